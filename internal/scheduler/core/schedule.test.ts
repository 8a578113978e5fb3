import { describe, expect, it } from "vitest";
import { buildSnapshot } from "./framework.ts";
import { feasibleNodesToFind, formatFitError, schedule, type Scheduled, type Unschedulable } from "./schedule.ts";
import { makeNode, makePod, seededRng } from "./testing.ts";

describe("schedule", () => {
  it("counts reasons per node, most common first", () => {
    const snap = buildSnapshot([
      makeNode("n1", { cpu: "1" }),
      makeNode("n2", { cpu: "1" }),
      makeNode("n3", { ready: "Unknown" }),
    ]);
    const r = schedule(makePod("web-1", { cpu: "2" }), snap) as Unschedulable;
    expect(r.message).toBe("0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.");
    expect(r.reasons.n3).toEqual(["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]);
  });

  it("sorts equal counts by reason, and says when there are no nodes", () => {
    expect(formatFitError(2, { a: ["b reason"], b: ["a reason"] })).toBe("0/2 nodes are available: 1 a reason, 1 b reason.");
    expect(schedule(makePod("p"), buildSnapshot([]))).toEqual({ reasons: {}, message: "no nodes available to schedule pods", examined: 0 });
  });

  it("breaks ties between equal nodes at random, through the injected rng", () => {
    const snap = buildSnapshot(["a", "b", "c", "d"].map((n) => makeNode(n)));
    const pick = (seed: number) => {
      const rng = seededRng(seed);
      return Array.from({ length: 200 }, () => (schedule(makePod("p"), snap, { rng }) as Scheduled).node);
    };
    expect(pick(1)).toEqual(pick(1));
    const counts = new Map<string, number>();
    for (const n of pick(2)) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(["a", "b", "c", "d"]);
    for (const c of counts.values()) expect(c).toBeGreaterThan(25);
  });

  it("returns the only feasible node without scoring", () => {
    const snap = buildSnapshot([makeNode("a", { unschedulable: true }), makeNode("b")]);
    expect(schedule(makePod("p"), snap)).toEqual({ node: "b", score: 0, feasible: 1, examined: 2 });
  });

  it("looks at enough nodes, not all, on a big cluster (percentageOfNodesToScore), starting where asked", () => {
    expect(feasibleNodesToFind(50)).toBe(50);
    expect(feasibleNodesToFind(500)).toBe(230); // 50% - 500/125 = 46%
    expect(feasibleNodesToFind(5000)).toBe(500); // 10%
    expect(feasibleNodesToFind(100_000)).toBe(5000); // never below 5%
    expect(feasibleNodesToFind(500, 100)).toBe(500);
    expect(feasibleNodesToFind(150, 10)).toBe(100); // at least 100

    const snap = buildSnapshot(Array.from({ length: 500 }, (_, i) => makeNode(`n${String(i).padStart(3, "0")}`)));
    const r = schedule(makePod("p"), snap, { startIndex: 400 }) as Scheduled;
    expect(r.feasible).toBe(230);
    expect(r.examined).toBe(230);
    // From n400 on, wrapping around: n400 … n499, n000 … n129.
    const idx = Number(r.node.slice(1));
    expect(idx >= 400 || idx < 130).toBe(true);
    expect((schedule(makePod("p"), snap, { percentageOfNodesToScore: 100 }) as Scheduled).feasible).toBe(500);
  });

  it("still looks at every node before calling a pod unschedulable", () => {
    const snap = buildSnapshot([
      ...Array.from({ length: 300 }, (_, i) => makeNode(`small${i}`, { cpu: "1" })),
      makeNode("big", { cpu: "8" }),
    ]);
    expect((schedule(makePod("p", { cpu: "4" }), snap, { startIndex: 7 }) as Scheduled).node).toBe("big");
    const r = schedule(makePod("p", { cpu: "16" }), snap) as Unschedulable;
    expect(r.message).toBe("0/301 nodes are available: 301 Insufficient cpu.");
  });

  it("weights scores: a strong PreferNoSchedule preference beats a small resource difference", () => {
    const snap = buildSnapshot(
      [makeNode("tainted", { taints: [{ key: "spot", value: "", effect: "PreferNoSchedule" }] }), makeNode("used")],
      [makePod("x", { node: "used", cpu: "1" })],
    );
    expect(schedule(makePod("p"), snap)).toMatchObject({ node: "used" });
  });

  it("skips nodes known only from their pods", () => {
    const snap = buildSnapshot([makeNode("a")]);
    const ghost = { ...snap.nodes[0], name: "ghost", node: undefined };
    expect(schedule(makePod("p", { cpu: "100" }), { nodes: [...snap.nodes, ghost] })).toMatchObject({ message: "0/1 nodes are available: 1 Insufficient cpu." });
  });
});
