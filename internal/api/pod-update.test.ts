import { create, fromJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSpecSchema, TolerationSchema, type PodSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { defaultPodSpec } from "./defaults.ts";
import { podUpdateViolations } from "./pod-update.ts";

const SPEC = {
  enableServiceLinks: false,
  securityContext: { runAsUser: "1000", runAsGroup: "3000", fsGroup: "2000", runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
  dnsConfig: { options: [{ name: "ndots", value: "2" }], searches: ["svc.example"] },
  containers: [{ name: "web", image: "web:1", securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } } }],
};

function spec(json: object): PodSpec {
  const s = fromJson(PodSpecSchema, json as any);
  defaultPodSpec(s);
  return s;
}

describe("pod update immutability", () => {
  it("lets the same spec through, whatever order its fields were set in", () => {
    const stored = spec(SPEC);
    stored.nodeName = "node-1";
    // The same manifest decoded again (apply carries the node over), its fields set in another order.
    const reordered = create(PodSpecSchema, { nodeName: "node-1" });
    reordered.dnsConfig = spec(SPEC).dnsConfig;
    reordered.containers = spec(SPEC).containers;
    reordered.securityContext = spec(SPEC).securityContext;
    reordered.enableServiceLinks = false;
    defaultPodSpec(reordered);
    expect(podUpdateViolations(reordered, stored)).toEqual([]);
  });

  it("allows images, deadlines and tolerations to change", () => {
    const next = spec(SPEC);
    next.containers[0].image = "web:2";
    next.activeDeadlineSeconds = 60n;
    next.tolerations = [create(TolerationSchema, { key: "k", operator: "Exists", effect: "NoSchedule" })];
    expect(podUpdateViolations(next, spec(SPEC))).toEqual([]);
  });

  it("refuses any other change, naming the fields that changed", () => {
    const next = spec(SPEC);
    next.securityContext!.runAsUser = 1001n;
    next.enableServiceLinks = undefined;
    expect(podUpdateViolations(next, spec(SPEC))).toEqual([
      {
        field: "spec",
        message:
          "pod updates may not change fields other than spec.containers[*].image, spec.initContainers[*].image, spec.activeDeadlineSeconds and spec.tolerations (changed: spec.securityContext, spec.enableServiceLinks)",
      },
    ]);
  });

  it("keeps a bound pod on its node", () => {
    const stored = spec(SPEC);
    stored.nodeName = "node-1";
    const moved = spec(SPEC);
    moved.nodeName = "node-2";
    expect(podUpdateViolations(moved, stored)).toEqual([{ field: "spec.nodeName", message: "field is immutable once the pod is bound" }]);
  });
});
