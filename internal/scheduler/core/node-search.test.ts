// percentageOfNodesToScore and the rotating start (kube-scheduler's numFeasibleNodesToFind and
// nextStartNodeIndex): how many nodes one decision looks at, where the next one starts, and that
// what needs the whole cluster (pod anti-affinity, workload spread) still sees all of it.
import { describe, expect, it } from "vitest";
import { buildSnapshot, type FilterPlugin, type Snapshot } from "./framework.ts";
import { addPodToNode, type NodeInfo } from "./node-info.ts";
import { podInfoOf } from "./pod-info.ts";
import { defaultFilters } from "./plugins/index.ts";
import { createNodeRotation, isScheduled, type Scheduled, type Unschedulable } from "./schedule.ts";
import { makeNode, makePod, seededRng, type PodOpts } from "./testing.ts";

const name = (i: number) => `n${String(i).padStart(4, "0")}`;
const nodes = (count: number, labels: (i: number) => Record<string, string> = () => ({})) =>
  buildSnapshot(Array.from({ length: count }, (_, i) => makeNode(name(i), { cpu: "64", memory: "256Gi", labels: labels(i) })));

/** A last filter that lets every node through and records the nodes it was asked about, per decision. */
function recordingFilter(): { plugin: FilterPlugin; decisions: string[][] } {
  const decisions: string[][] = [];
  return {
    decisions,
    plugin: {
      name: "Recording",
      prepare() {
        const seen: string[] = [];
        decisions.push(seen);
        return (node) => {
          seen.push(node.name);
          return undefined;
        };
      },
    },
  };
}

/** Schedules the pods one after another, counting each placed pod on its node as the cache's assume does. */
function placeAll(snapshot: Snapshot, pods: PodOpts[], percentageOfNodesToScore: number): (Scheduled | Unschedulable)[] {
  const rotation = createNodeRotation();
  const byName = new Map<string, NodeInfo>(snapshot.nodes.map((n) => [n.name, n]));
  const rng = seededRng(7);
  return pods.map((o, i) => {
    const pod = makePod(`p${i}`, o);
    const r = rotation.schedule(pod, snapshot, { percentageOfNodesToScore, rng });
    if (isScheduled(r)) addPodToNode(byName.get(r.node)!, podInfoOf({ ...pod, spec: { ...pod.spec!, nodeName: r.node } }));
    return r;
  });
}

describe("percentageOfNodesToScore", () => {
  it("filters only as many of 1,000 nodes as it needs: 42% adaptive, the given %, at least 100, or all", () => {
    const snap = nodes(1000);
    for (const [percentage, expected] of [
      [0, 420], // 50% − 1000/125
      [10, 100],
      [5, 100], // 50 nodes would be fewer than 100
      [25, 250],
      [100, 1000],
    ]) {
      const rec = recordingFilter();
      const r = createNodeRotation().schedule(makePod("p"), snap, { filters: [...defaultFilters, rec.plugin], percentageOfNodesToScore: percentage });
      expect(rec.decisions[0]).toHaveLength(expected);
      expect(r).toMatchObject({ feasible: expected, examined: expected });
    }
  });

  it("starts each decision where the previous one stopped, wrapping around, so every node gets its turn", () => {
    const snap = nodes(1000);
    const rec = recordingFilter();
    const rotation = createNodeRotation();
    for (let i = 0; i < 5; i++) rotation.schedule(makePod(`p${i}`), snap, { filters: [rec.plugin] });
    expect(rec.decisions.map((d) => d[0])).toEqual([name(0), name(420), name(840), name(260), name(680)]);
    expect(rec.decisions[2].at(-1)).toBe(name(259)); // 840 … 999, 0 … 259
    expect(rotation.nextStartIndex).toBe(100);
    const seen = new Set(rec.decisions.flat());
    expect(seen.size).toBe(1000);
  });

  it("moves on past the nodes that did not fit as well as those that did", () => {
    // Every other node is cordoned: 100 feasible nodes take 200 places of the list.
    const snap = buildSnapshot(Array.from({ length: 400 }, (_, i) => makeNode(name(i), { unschedulable: i % 2 === 1 })));
    const rotation = createNodeRotation();
    expect(rotation.schedule(makePod("a"), snap, { percentageOfNodesToScore: 10 })).toMatchObject({ feasible: 100, examined: 199 });
    expect(rotation.nextStartIndex).toBe(199);
  });

  it("still finds the one node of 500 that fits, wherever the search starts", () => {
    const snap = buildSnapshot(Array.from({ length: 500 }, (_, i) => makeNode(name(i), { cpu: i === 137 ? "16" : "1" })));
    const rotation = createNodeRotation();
    for (let i = 0; i < 3; i++) {
      const r = rotation.schedule(makePod(`p${i}`, { cpu: "4" }), snap, { percentageOfNodesToScore: 10 });
      expect(r).toMatchObject({ node: name(137), feasible: 1, examined: 500 });
    }
    const none = rotation.schedule(makePod("big", { cpu: "32" }), snap, { percentageOfNodesToScore: 10 }) as Unschedulable;
    expect(none.message).toBe("0/500 nodes are available: 500 Insufficient cpu.");
  });

  describe("with 500 nodes and a 10% search, what needs the whole cluster still sees it", () => {
    it("zone anti-affinity: one replica per zone even when the others sit outside the searched nodes", () => {
      // 4 zones of 125 consecutive nodes; each search covers 100 nodes.
      const snap = nodes(500, (i) => ({ zone: `z${Math.floor(i / 125)}` }));
      const zoneOf = (node: string) => `z${Math.floor(Number(node.slice(1)) / 125)}`;
      const replica: PodOpts = {
        labels: { app: "db" },
        owner: "db",
        affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: "db" } }, topologyKey: "zone" }] } },
      };
      const results = placeAll(snap, Array(5).fill(replica), 10);
      const placed = results.slice(0, 4).map((r) => zoneOf((r as Scheduled).node));
      expect(new Set(placed).size).toBe(4);
      expect((results[4] as Unschedulable).message).toBe("0/500 nodes are available: 500 node(s) didn't satisfy existing pods anti-affinity rules."); // the existing replicas' terms are checked first
    });

    it("hostname anti-affinity: 500 replicas on 500 different nodes, the 501st refused", () => {
      const snap = nodes(500);
      const replica: PodOpts = {
        labels: { app: "one-per-node" },
        affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: "one-per-node" } }, topologyKey: "kubernetes.io/hostname" }] } },
      };
      const results = placeAll(snap, Array(501).fill(replica), 10);
      expect(new Set(results.slice(0, 500).map((r) => (r as Scheduled).node)).size).toBe(500);
      expect(isScheduled(results[500])).toBe(false);
    });

    it("workload spread: 1,000 replicas end up 2 on every node", () => {
      const snap = nodes(500);
      const results = placeAll(snap, Array(1000).fill({ cpu: "100m", memory: "64Mi", owner: "web", labels: { app: "web" } }), 10);
      const perNode = new Map<string, number>();
      for (const r of results) perNode.set((r as Scheduled).node, (perNode.get((r as Scheduled).node) ?? 0) + 1);
      expect(perNode.size).toBe(500);
      expect(new Set(perNode.values())).toEqual(new Set([2]));
    });
  });
});
