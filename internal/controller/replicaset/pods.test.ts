import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { compareForDeletion, controllerRefOf, hasTemplateLabels, isPodActive, isPodAvailable, podFromTemplate, podsToDelete } from "./pods.ts";
import { calculateStatus } from "./status.ts";
import { replicaSet } from "./testing.ts";

const NOW = 1_700_000_000_000;

function pod(name: string, o: { node?: string; phase?: string; readySince?: number; restarts?: number; created?: number; deleting?: boolean; labels?: Record<string, string> } = {}): Pod {
  return create(PodSchema, {
    metadata: {
      name,
      namespace: "default",
      labels: o.labels ?? { app: "x" },
      creationTimestamp: timestampFromMs(o.created ?? NOW - 60_000),
      deletionTimestamp: o.deleting ? timestampFromMs(NOW) : undefined,
    },
    spec: { nodeName: o.node ?? "" },
    status: {
      phase: o.phase ?? "Pending",
      conditions: o.readySince !== undefined ? [{ type: "Ready", status: "True", lastTransitionTime: timestampFromMs(o.readySince) }] : [],
      containerStatuses: [{ name: "main", restartCount: o.restarts ?? 0 }],
    },
  });
}

const names = (ps: Pod[]) => ps.map((p) => p.metadata!.name);

describe("pod ranking for deletion", () => {
  it("orders unscheduled, then Pending < Unknown < Running, not ready, newer ready, restarts, newer", () => {
    const pods = [
      pod("ready-old", { node: "n", phase: "Running", readySince: NOW - 50_000 }),
      pod("ready-new", { node: "n", phase: "Running", readySince: NOW - 1_000 }),
      pod("running-notready", { node: "n", phase: "Running" }),
      pod("unknown", { node: "n", phase: "Unknown" }),
      pod("pending-bound", { node: "n", phase: "Pending" }),
      pod("unscheduled", {}),
    ];
    expect(names([...pods].sort(compareForDeletion))).toEqual(["unscheduled", "pending-bound", "unknown", "running-notready", "ready-new", "ready-old"]);
  });

  it("breaks ties by restarts (more first), then age (newer first)", () => {
    const a = pod("few-restarts", { node: "n", phase: "Running", restarts: 1, created: NOW - 5000 });
    const b = pod("many-restarts", { node: "n", phase: "Running", restarts: 7, created: NOW - 9000 });
    const c = pod("newer", { node: "n", phase: "Running", restarts: 1, created: NOW - 1000 });
    expect(names(podsToDelete([a, b, c], 3))).toEqual(["many-restarts", "newer", "few-restarts"]);
    expect(names(podsToDelete([a, b, c], 1))).toEqual(["many-restarts"]);
    expect(podsToDelete([a], 0)).toEqual([]);
  });
});

describe("pod predicates", () => {
  it("active: not finished and not being deleted", () => {
    expect(isPodActive(pod("p"))).toBe(true);
    expect(isPodActive(pod("p", { phase: "Succeeded" }))).toBe(false);
    expect(isPodActive(pod("p", { phase: "Failed" }))).toBe(false);
    expect(isPodActive(pod("p", { deleting: true }))).toBe(false);
  });

  it("available: ready for minReadySeconds", () => {
    const p = pod("p", { readySince: NOW - 4_000 });
    expect(isPodAvailable(p, 0, NOW)).toBe(true);
    expect(isPodAvailable(p, 4, NOW)).toBe(true);
    expect(isPodAvailable(p, 5, NOW)).toBe(false);
    expect(isPodAvailable(pod("q"), 0, NOW)).toBe(false);
  });

  it("template labels must all be present with their values", () => {
    expect(hasTemplateLabels(pod("p", { labels: { app: "x", extra: "1" } }), { app: "x" })).toBe(true);
    expect(hasTemplateLabels(pod("p", { labels: { app: "y" } }), { app: "x" })).toBe(false);
    expect(hasTemplateLabels(pod("p", { labels: { app: "x" } }), { app: "x", tier: "web" })).toBe(false);
  });
});

describe("podFromTemplate", () => {
  it("copies the template and is controlled by the ReplicaSet", () => {
    const rs = replicaSet("web", 2);
    rs.metadata!.uid = "u-1";
    rs.spec!.template!.metadata!.annotations = { note: "n" };
    const p = podFromTemplate(rs);
    expect(p.metadata).toMatchObject({ name: "", generateName: "web-", namespace: "default", labels: { app: "web" }, annotations: { note: "n" } });
    expect(controllerRefOf(p)).toMatchObject({ kind: "ReplicaSet", name: "web", uid: "u-1", controller: true, blockOwnerDeletion: true });
    // A copy: changing the pod does not change the template.
    p.spec!.containers[0].image = "changed";
    p.metadata!.labels.app = "changed";
    expect(rs.spec!.template!.spec!.containers[0].image).toBe("skiff.local/busybox:v1");
    expect(rs.spec!.template!.metadata!.labels.app).toBe("web");
  });
});

describe("calculateStatus", () => {
  it("counts replicas, fully labelled, ready and available pods", () => {
    const rs = replicaSet("x", 3, { labels: { app: "x" }, minReadySeconds: 10 });
    rs.metadata!.generation = 4n;
    rs.spec!.template!.metadata!.labels = { app: "x", tier: "web" };
    const pods = [
      pod("a", { labels: { app: "x", tier: "web" }, readySince: NOW - 60_000 }),
      pod("b", { labels: { app: "x" }, readySince: NOW - 1_000 }),
      pod("c", { labels: { app: "x", tier: "web" } }),
    ];
    const st = calculateStatus(rs, pods, undefined, NOW);
    expect(st).toMatchObject({ replicas: 3, fullyLabeledReplicas: 2, readyReplicas: 2, availableReplicas: 1, observedGeneration: 4n, conditions: [] });
  });

  it("adds ReplicaFailure on a failure, keeps it unchanged while failing, drops it on success", () => {
    const rs = replicaSet("x", 1);
    const failed = calculateStatus(rs, [], { reason: "FailedCreate", message: "quota" }, NOW);
    expect(failed.conditions).toHaveLength(1);
    expect(failed.conditions[0]).toMatchObject({ type: "ReplicaFailure", status: "True", reason: "FailedCreate", message: "quota" });
    rs.status = failed;
    const again = calculateStatus(rs, [], { reason: "FailedCreate", message: "other" }, NOW + 5000);
    expect(again.conditions[0].message).toBe("quota");
    rs.status = again;
    expect(calculateStatus(rs, [], undefined, NOW).conditions).toEqual([]);
  });
});
