import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSpecSchema, type PodSpec } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { checkPod, enforcedLevel, formatViolations, validateNamespaceLabels } from "./podsecurity.ts";

const spec = (init: any): PodSpec => create(PodSpecSchema, init);
const checks = (level: "baseline" | "restricted", s: PodSpec) => checkPod(level, s).map((v) => v.check);

/** What the restricted level asks of every container. */
const RESTRICTED_CONTAINER = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };
const RESTRICTED_POD = { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } };

describe("Pod Security Standards", () => {
  it("privileged allows anything", () => {
    expect(checkPod("privileged", spec({ hostNetwork: true, containers: [{ name: "a", securityContext: { privileged: true } }] }))).toEqual([]);
  });

  it("baseline refuses host namespaces, privileged, extra capabilities, hostPath, hostPort and Unconfined seccomp; allows the default set", () => {
    expect(checks("baseline", spec({ containers: [{ name: "a", securityContext: { capabilities: { add: ["CHOWN", "CAP_KILL", "net_bind_service"] } } }] }))).toEqual([]);
    const bad = spec({
      hostNetwork: true,
      hostIpc: true,
      securityContext: { seccompProfile: { type: "Unconfined" } },
      volumes: [{ name: "host", hostPath: { path: "/etc" } }, { name: "tmp", emptyDir: {} }],
      initContainers: [{ name: "init", securityContext: { privileged: true } }],
      containers: [{ name: "a", ports: [{ containerPort: 80, hostPort: 80 }], securityContext: { capabilities: { add: ["NET_ADMIN", "SYS_TIME"] } } }],
    });
    const v = checkPod("baseline", bad);
    expect(formatViolations("baseline", "latest", v)).toBe(
      'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostIPC=true), ' +
        'privileged (container "init" must not set securityContext.privileged=true), ' +
        'non-default capabilities (container "a" must not include "NET_ADMIN", "SYS_TIME" in securityContext.capabilities.add), ' +
        'hostPath volumes (volume "host"), hostPort (container "a" uses hostPort 80), ' +
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
    );
  });

  it("restricted passes a pod that sets what it asks, at pod or container level", () => {
    expect(checks("restricted", spec({ securityContext: RESTRICTED_POD, volumes: [{ name: "d", emptyDir: {} }], containers: [{ name: "a", securityContext: RESTRICTED_CONTAINER }] }))).toEqual([]);
    const perContainer = { ...RESTRICTED_CONTAINER, runAsNonRoot: true, seccompProfile: { type: "Localhost", localhostProfile: "p.json" }, capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] } };
    expect(checks("restricted", spec({ containers: [{ name: "a", securityContext: perContainer }] }))).toEqual([]);
  });

  it("restricted lists each rule with the containers that break it", () => {
    const v = checkPod("restricted", spec({
      securityContext: { runAsUser: 0n },
      volumes: [{ name: "h", hostPath: { path: "/" } }],
      containers: [
        { name: "a", securityContext: { ...RESTRICTED_CONTAINER, runAsNonRoot: false, capabilities: { drop: ["ALL"], add: ["CHOWN"] } } },
        { name: "b", securityContext: { seccompProfile: { type: "Unconfined" } } },
      ],
    }));
    expect(v.map((x) => [x.check, x.details])).toEqual([
      ["hostPath volumes", ['volume "h"']],
      ["seccompProfile", [
        'container "b" must not set securityContext.seccompProfile.type to "Unconfined"',
        'pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
      ]],
      ["restricted volume types", ['volume "h" uses restricted volume type "hostPath"']],
      ["allowPrivilegeEscalation != false", ['container "b" must set securityContext.allowPrivilegeEscalation=false']],
      ["runAsNonRoot != true", ['container "a" must not set securityContext.runAsNonRoot=false', 'pod or container "b" must set securityContext.runAsNonRoot=true']],
      ["runAsUser=0", ["pod must not set runAsUser=0"]],
      ["unrestricted capabilities", ['container "b" must set securityContext.capabilities.drop=["ALL"]', 'container "a" must not include "CHOWN" in securityContext.capabilities.add']],
    ]);
  });
});

describe("namespace labels", () => {
  it("choose the enforced level; none or another means privileged", () => {
    expect(enforcedLevel({ "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.30" })).toEqual({ level: "restricted", version: "v1.30" });
    expect(enforcedLevel({ "pod-security.kubernetes.io/warn": "restricted" })).toEqual({ level: "privileged", version: "latest" });
    expect(enforcedLevel(undefined).level).toBe("privileged");
  });

  it("must name a level and a version Pod Security knows", () => {
    expect(validateNamespaceLabels({ "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/warn-version": "latest" })).toEqual([]);
    expect(validateNamespaceLabels({ "pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/audit-version": "1.30" })).toEqual([
      { field: "metadata.labels[pod-security.kubernetes.io/enforce]", message: '"strict" must be one of privileged, baseline, restricted' },
      { field: "metadata.labels[pod-security.kubernetes.io/audit-version]", message: '"1.30" must be "latest" or a version like "v1.30"' },
    ]);
  });
});
