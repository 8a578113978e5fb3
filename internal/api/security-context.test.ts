import { create, fromJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema, PodSpecSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ruleViolations } from "./protovalidate.ts";
import { validatePodSecurity } from "./security-context.ts";

const check = (json: any) => validatePodSecurity(fromJson(PodSpecSchema, json), "spec");
const container = (securityContext: any) => ({ containers: [{ name: "a", image: "busybox", securityContext }] });

describe("pod security fields", () => {
  it("accepts what the agent enforces", () => {
    expect(check({
      hostPid: true,
      hostIpc: true,
      securityContext: { runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3000], seccompProfile: { type: "Localhost", localhostProfile: "profiles/a.json" } },
      ...container({ capabilities: { add: ["NET_ADMIN", "cap_kill"], drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" }, procMount: "Default", privileged: true }),
    })).toEqual([]);
  });

  it("refuses what it cannot honour, with field paths", () => {
    expect(check({
      securityContext: { sysctls: [{ name: "net.ipv4.ip_forward", value: "1" }], seccompProfile: { type: "Localhost" } },
      initContainers: [{ name: "i", image: "busybox", securityContext: { procMount: "Unmasked" } }],
      ...container({ capabilities: { add: ["NET_ADMN"] }, seccompProfile: { type: "RuntimeDefault", localhostProfile: "x" } }),
    }).map((v) => v.field)).toEqual([
      "spec.securityContext.seccompProfile.localhostProfile",
      "spec.securityContext.sysctls",
      "spec.initContainers[0].securityContext.procMount",
      "spec.containers[0].securityContext.capabilities.add[0]",
      "spec.containers[0].securityContext.seccompProfile.localhostProfile",
    ]);
  });

  it("keeps Localhost profiles inside the node's profile root", () => {
    for (const p of ["/etc/profile.json", "../x.json", "a/../../x.json"]) {
      expect(check(container({ seccompProfile: { type: "Localhost", localhostProfile: p } }))[0]?.message).toMatch(/relative path without/);
    }
  });

  it("applies Kubernetes' rules on allowPrivilegeEscalation=false", () => {
    expect(check(container({ allowPrivilegeEscalation: false, privileged: true, capabilities: { add: ["SYS_ADMIN"] } })).map((v) => v.message)).toEqual([
      "cannot set allowPrivilegeEscalation to false and privileged to true",
      "cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN",
    ]);
  });

  it("the .proto rules: a seccomp type from the list, non-negative groups", () => {
    const pod = create(PodSchema, fromJson(PodSchema, {
      metadata: { name: "p" },
      spec: { securityContext: { supplementalGroups: [-1], seccompProfile: { type: "Strict" } }, containers: [{ name: "a", image: "b" }] },
    }));
    expect(ruleViolations(PodSchema, pod).map((v) => v.field)).toEqual(["spec.securityContext.supplementalGroups[0]", "spec.securityContext.seccompProfile.type"]);
  });
});
