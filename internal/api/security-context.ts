// Semantic checks of a pod's security settings: what the .proto rules cannot say, and the fields
// the node agent cannot honour (refused here, never stored and ignored).
import type { Capabilities, Container, PodSpec, SeccompProfile } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { FieldViolation } from "./names.ts";

/** Linux capability names without the CAP_ prefix (capabilities(7)), in bit order (capability.h). */
export const CAPABILITIES = new Set([
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
  "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
  "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
  "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
  "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
  "CHECKPOINT_RESTORE",
]);

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name NET_ADMIN. */
export const bareCapability = (name: string) => name.toUpperCase().replace(/^CAP_/, "");

function validateCapabilities(caps: Capabilities | undefined, path: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const list of ["add", "drop"] as const) {
    (caps?.[list] ?? []).forEach((name, i) => {
      const bare = bareCapability(name);
      if (bare !== "ALL" && !CAPABILITIES.has(bare)) {
        out.push({ field: `${path}.capabilities.${list}[${i}]`, message: `unknown capability "${name}": use a name from capabilities(7) like NET_BIND_SERVICE, or ALL` });
      }
    });
  }
  return out;
}

export function validateSeccompProfile(p: SeccompProfile | undefined, path: string): FieldViolation[] {
  if (!p) return [];
  const field = `${path}.seccompProfile.localhostProfile`;
  if (p.type === "Localhost") {
    if (p.localhostProfile === "") return [{ field, message: 'required when type is "Localhost": a path relative to the node\'s --seccomp-profile-root' }];
    if (p.localhostProfile.startsWith("/") || p.localhostProfile.split("/").includes("..")) {
      return [{ field, message: `"${p.localhostProfile}" must be a relative path without ".." (it is read under the node's --seccomp-profile-root)` }];
    }
  } else if (p.localhostProfile !== "") {
    return [{ field, message: 'may only be set when type is "Localhost"' }];
  }
  return [];
}

function validateContainerSecurity(c: Container, path: string): FieldViolation[] {
  const sc = c.securityContext;
  if (!sc) return [];
  const p = `${path}.securityContext`;
  const out = [...validateCapabilities(sc.capabilities, p), ...validateSeccompProfile(sc.seccompProfile, p)];
  if (sc.procMount !== "" && sc.procMount !== "Default") {
    out.push({ field: `${p}.procMount`, message: `"${sc.procMount}" is not supported: this node agent always masks /proc paths; use "Default" or leave it unset` });
  }
  // Kubernetes' own rules: privilege escalation cannot be off for what is privileged anyway.
  if (sc.allowPrivilegeEscalation === false) {
    if (sc.privileged) out.push({ field: `${p}.allowPrivilegeEscalation`, message: "cannot set allowPrivilegeEscalation to false and privileged to true" });
    if ((sc.capabilities?.add ?? []).some((cap) => bareCapability(cap) === "SYS_ADMIN")) {
      out.push({ field: `${p}.allowPrivilegeEscalation`, message: "cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN" });
    }
  }
  return out;
}

/** The pod-level and per-container security checks of a pod spec at `path`. */
export function validatePodSecurity(spec: PodSpec, path: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  const psc = spec.securityContext;
  if (psc) {
    out.push(...validateSeccompProfile(psc.seccompProfile, `${path}.securityContext`));
    if (psc.sysctls.length > 0) {
      out.push({ field: `${path}.securityContext.sysctls`, message: "sysctls are not supported by this node agent: remove them (set them on the node instead)" });
    }
  }
  spec.initContainers.forEach((c, i) => out.push(...validateContainerSecurity(c, `${path}.initContainers[${i}]`)));
  spec.containers.forEach((c, i) => out.push(...validateContainerSecurity(c, `${path}.containers[${i}]`)));
  return out;
}
