import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../framework.ts";
import { filterNodes, schedule, type Unschedulable } from "../schedule.ts";
import { makeNode, makePod } from "../testing.ts";
import type { Toleration } from "../../../../gen/skiff/v1alpha1/pod_pb.js";
import { nodeUnschedulable, preferNoScheduleTaints, taintToleration, tolerates } from "./taints.ts";

const tol = (t: Partial<Toleration>) => ({ key: "", operator: "", value: "", effect: "", ...t }) as Toleration;
const taint = { key: "dedicated", value: "gpu", effect: "NoSchedule" };
const filters = { filters: [nodeUnschedulable, taintToleration], scorers: [] };

describe("tolerates", () => {
  it("matches kube's rules", () => {
    expect(tolerates(tol({ key: "dedicated", value: "gpu" }), taint)).toBe(true);
    expect(tolerates(tol({ key: "dedicated", operator: "Equal", value: "cpu" }), taint)).toBe(false);
    expect(tolerates(tol({ key: "dedicated", operator: "Exists" }), taint)).toBe(true);
    expect(tolerates(tol({ key: "other", operator: "Exists" }), taint)).toBe(false);
    expect(tolerates(tol({ operator: "Exists" }), taint)).toBe(true); // tolerates everything
    expect(tolerates(tol({ value: "gpu" }), taint)).toBe(false); // empty key needs Exists
    expect(tolerates(tol({ key: "dedicated", operator: "Exists", effect: "NoExecute" }), taint)).toBe(false);
    expect(tolerates(tol({ key: "dedicated", operator: "Exists", effect: "NoSchedule" }), taint)).toBe(true);
  });
});

describe("TaintToleration filter", () => {
  const snap = buildSnapshot([
    makeNode("plain"),
    makeNode("gpu", { taints: [taint] }),
    makeNode("evict", { taints: [{ key: "maint", value: "", effect: "NoExecute" }] }),
    makeNode("soft", { taints: [{ key: "spot", value: "yes", effect: "PreferNoSchedule" }] }),
  ]);

  it("keeps pods off NoSchedule and NoExecute taints they do not tolerate", () => {
    const r = filterNodes(makePod("p"), snap, [taintToleration]);
    expect(r.feasible.map((n) => n.name)).toEqual(["plain", "soft"]);
    expect(r.reasons.gpu).toEqual(["node(s) had untolerated taint {dedicated: gpu}"]);
    expect(r.reasons.evict).toEqual(["node(s) had untolerated taint {maint: }"]);
  });

  it("lets a tolerating pod on", () => {
    const only = buildSnapshot([makeNode("gpu", { taints: [taint] })]);
    expect(schedule(makePod("p", { tolerations: [{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }] }), only, filters)).toMatchObject({ node: "gpu" });
  });

  it("treats a node that is not Ready as tainted not-ready / unreachable", () => {
    const s = buildSnapshot([makeNode("down", { ready: "False" }), makeNode("lost", { ready: "Unknown" }), makeNode("new", { ready: null })]);
    const r = schedule(makePod("p"), s, filters) as Unschedulable;
    expect(r.message).toBe(
      "0/3 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.",
    );
    const tolerant = makePod("p", { tolerations: [{ key: "node.kubernetes.io/unreachable", operator: "Exists" }] });
    expect(schedule(tolerant, s, filters)).toMatchObject({ node: "lost" });
  });

  it("does not add a second not-ready taint when the node already has one", () => {
    const s = buildSnapshot([makeNode("down", { ready: "False", taints: [{ key: "node.kubernetes.io/not-ready", value: "", effect: "NoSchedule" }] })]);
    expect(s.nodes[0].taints).toHaveLength(1);
  });
});

describe("NodeUnschedulable", () => {
  const snap = buildSnapshot([makeNode("cordoned", { unschedulable: true })]);

  it("keeps pods off cordoned nodes", () => {
    expect((schedule(makePod("p"), snap, filters) as Unschedulable).message).toBe("0/1 nodes are available: 1 node(s) were unschedulable.");
  });

  it("unless they tolerate node.kubernetes.io/unschedulable", () => {
    const p = makePod("p", { tolerations: [{ key: "node.kubernetes.io/unschedulable", operator: "Exists", effect: "NoSchedule" }] });
    expect(schedule(p, snap, filters)).toMatchObject({ node: "cordoned" });
  });
});

describe("PreferNoSchedule", () => {
  const snap = buildSnapshot([
    makeNode("soft", { taints: [{ key: "spot", value: "yes", effect: "PreferNoSchedule" }] }),
    makeNode("plain"),
  ]);

  it("scores untainted nodes higher, and ignores tolerated taints", () => {
    for (let i = 0; i < 10; i++) expect(schedule(makePod(`p${i}`), snap, { scorers: [preferNoScheduleTaints] })).toMatchObject({ node: "plain" });
    const tolerant = makePod("t", { tolerations: [{ key: "spot", operator: "Exists", effect: "PreferNoSchedule" }] });
    const picked = new Set<string>();
    for (let i = 0; i < 50; i++) picked.add((schedule(tolerant, snap, { scorers: [preferNoScheduleTaints] }) as { node: string }).node);
    expect([...picked].sort()).toEqual(["plain", "soft"]);
  });
});
