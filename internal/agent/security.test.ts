import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ContainerConfigError } from "./container-config.ts";
import { containerSecurity } from "./security.ts";

const OPTS = { seccompDefault: false, seccompProfileRoot: "/var/lib/skiff/seccomp" };

function pod(podSc: any, sc: any, extra: any = {}) {
  return create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { securityContext: podSc, containers: [{ name: "app", image: "busybox", securityContext: sc }], ...extra } });
}
const resolve = (p: ReturnType<typeof pod>, opts = OPTS) => containerSecurity(p, p.spec!.containers[0], opts);

describe("containerSecurity", () => {
  it("gives Kubernetes' defaults when nothing is set", () => {
    expect(resolve(pod(undefined, undefined))).toEqual({
      runAsUser: undefined,
      runAsGroup: undefined,
      runAsNonRoot: false,
      supplementalGroups: [],
      readOnlyRootFilesystem: false,
      privileged: false,
      allowPrivilegeEscalation: true,
      capabilities: { add: [], drop: [] },
      seccomp: { type: "Unconfined" },
      hostPid: false,
      hostIpc: false,
    });
    expect(resolve(pod(undefined, undefined), { ...OPTS, seccompDefault: true }).seccomp).toEqual({ type: "RuntimeDefault" });
  });

  it("lets the container's settings win over the pod's, and adds fsGroup to the supplemental groups", () => {
    const s = resolve(pod(
      { runAsUser: 1n, runAsGroup: 2n, runAsNonRoot: true, fsGroup: 9n, supplementalGroups: [7n, 8n], seccompProfile: { type: "RuntimeDefault" } },
      { runAsUser: 1000n, runAsNonRoot: false, seccompProfile: { type: "Unconfined" } },
      { hostPid: true, hostIpc: true },
    ));
    expect(s).toMatchObject({ runAsUser: 1000, runAsGroup: 2, runAsNonRoot: false, supplementalGroups: [7, 8, 9], seccomp: { type: "Unconfined" }, hostPid: true, hostIpc: true });
    expect(resolve(pod({ seccompProfile: { type: "RuntimeDefault" } }, {})).seccomp).toEqual({ type: "RuntimeDefault" });
  });

  it("finds Localhost profiles under the node's profile root, and never outside it", () => {
    expect(resolve(pod(undefined, { seccompProfile: { type: "Localhost", localhostProfile: "team/p.json" } })).seccomp).toEqual({ type: "Localhost", path: "/var/lib/skiff/seccomp/team/p.json" });
    expect(() => resolve(pod(undefined, { seccompProfile: { type: "Localhost", localhostProfile: "../../etc/shadow" } }))).toThrow(ContainerConfigError);
  });
});
