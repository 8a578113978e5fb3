// From a pod's and a container's securityContext to the runtime's ContainerSecurity, with
// Kubernetes' precedence: a container's own setting wins over the pod's, and what neither sets
// gets Kubernetes' default (the image's USER, privilege escalation allowed, the runtime's
// default capabilities, seccomp Unconfined unless the agent runs with --seccomp-default).
import { isAbsolute, join, normalize } from "node:path";
import type { Container, Pod, SeccompProfile } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerSecurity, SeccompSetting } from "../runtime/runtime.ts";
import { ContainerConfigError } from "./container-config.ts";

export interface SecurityOptions {
  /** Containers that set no seccomp profile get RuntimeDefault (kubelet's --seccomp-default). */
  seccompDefault: boolean;
  /** Where Localhost seccomp profiles live on the node. */
  seccompProfileRoot: string;
}

function seccomp(profile: SeccompProfile | undefined, opts: SecurityOptions, container: string): SeccompSetting {
  if (!profile) return { type: opts.seccompDefault ? "RuntimeDefault" : "Unconfined" };
  if (profile.type === "Localhost") {
    const rel = normalize(profile.localhostProfile);
    // Validation refuses these; a pod stored before that rule must not escape the root either.
    if (rel === "" || isAbsolute(rel) || rel.split("/").includes("..")) {
      throw new ContainerConfigError(`container "${container}": seccompProfile.localhostProfile ${JSON.stringify(profile.localhostProfile)} must be a path inside the node's seccomp profile root`);
    }
    return { type: "Localhost", path: join(opts.seccompProfileRoot, rel) };
  }
  return profile.type === "RuntimeDefault" ? { type: "RuntimeDefault" } : { type: "Unconfined" };
}

export function containerSecurity(pod: Pod, c: Container, opts: SecurityOptions): ContainerSecurity {
  const podSc = pod.spec?.securityContext;
  const sc = c.securityContext;
  const num = (v: bigint | undefined) => (v === undefined ? undefined : Number(v));
  const groups = (podSc?.supplementalGroups ?? []).map(Number);
  if (podSc?.fsGroup !== undefined) groups.push(Number(podSc.fsGroup));
  return {
    runAsUser: num(sc?.runAsUser ?? podSc?.runAsUser),
    runAsGroup: num(sc?.runAsGroup ?? podSc?.runAsGroup),
    runAsNonRoot: sc?.runAsNonRoot ?? podSc?.runAsNonRoot ?? false,
    supplementalGroups: groups,
    readOnlyRootFilesystem: sc?.readOnlyRootFilesystem ?? false,
    privileged: sc?.privileged ?? false,
    allowPrivilegeEscalation: sc?.allowPrivilegeEscalation ?? true,
    capabilities: { add: [...(sc?.capabilities?.add ?? [])], drop: [...(sc?.capabilities?.drop ?? [])] },
    seccomp: seccomp(sc?.seccompProfile ?? podSc?.seccompProfile, opts, c.name),
    hostPid: pod.spec?.hostPid ?? false,
    hostIpc: pod.spec?.hostIpc ?? false,
  };
}
