import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../framework.ts";
import { filterNodes, schedule, type Unschedulable } from "../schedule.ts";
import { makeNode, makePod, type PodOpts } from "../testing.ts";
import { interPodAffinity } from "./pod-affinity.ts";

const only = { filters: [interPodAffinity], scorers: [] };
const nodes = [
  makeNode("a", { labels: { zone: "z1" } }),
  makeNode("b", { labels: { zone: "z1" } }),
  makeNode("c", { labels: { zone: "z2" } }),
];
const term = (labels: Record<string, string>, topologyKey = "kubernetes.io/hostname", namespaces: string[] = []) => ({
  labelSelector: { matchLabels: labels },
  topologyKey,
  namespaces,
});
const anti = (...terms: object[]): PodOpts => ({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });
const affinity = (...terms: object[]): PodOpts => ({ affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });

function feasible(snap: ReturnType<typeof buildSnapshot>, opts: PodOpts & { labels?: Record<string, string> }): string[] {
  return filterNodes(makePod("new", opts), snap, [interPodAffinity]).feasible.map((n) => n.name);
}

describe("InterPodAffinity: anti-affinity", () => {
  it("keeps a pod off hosts that run a matching pod", () => {
    const snap = buildSnapshot(nodes, [makePod("web-1", { node: "a", labels: { app: "web" } })]);
    expect(feasible(snap, { labels: { app: "web" }, ...anti(term({ app: "web" })) })).toEqual(["b", "c"]);
    const r = schedule(makePod("new", anti(term({ app: "web" }))), buildSnapshot([nodes[0]], [makePod("w", { node: "a", labels: { app: "web" } })]), only);
    expect((r as Unschedulable).message).toBe("0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.");
  });

  it("works on any topology key (zone), and only within the term's namespaces", () => {
    const snap = buildSnapshot(nodes, [makePod("web-1", { node: "a", labels: { app: "web" } })]);
    expect(feasible(snap, anti(term({ app: "web" }, "zone")))).toEqual(["c"]);
    expect(feasible(snap, { namespace: "other", ...anti(term({ app: "web" })) })).toEqual(["a", "b", "c"]);
    expect(feasible(snap, { namespace: "other", ...anti(term({ app: "web" }, "kubernetes.io/hostname", ["default"])) })).toEqual(["b", "c"]);
  });

  it("is symmetric: an existing pod's anti-affinity keeps matching pods away", () => {
    const snap = buildSnapshot(nodes, [makePod("loner", { node: "c", labels: { app: "db" }, ...anti(term({ app: "web" })) })]);
    expect(feasible(snap, { labels: { app: "web" } })).toEqual(["a", "b"]);
    expect(feasible(snap, { labels: { app: "api" } })).toEqual(["a", "b", "c"]);
    const alone = buildSnapshot([nodes[2]], [makePod("loner", { node: "c", labels: { app: "db" }, ...anti(term({ app: "web" })) })]);
    const r = schedule(makePod("new", { labels: { app: "web" } }), alone, only);
    expect((r as Unschedulable).message).toBe("0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.");
  });
});

describe("InterPodAffinity: affinity", () => {
  it("requires a matching pod in the node's domain", () => {
    const snap = buildSnapshot(nodes, [makePod("cache", { node: "b", labels: { app: "cache" } })]);
    expect(feasible(snap, affinity(term({ app: "cache" })))).toEqual(["b"]);
    expect(feasible(snap, affinity(term({ app: "cache" }, "zone")))).toEqual(["a", "b"]);
    expect(feasible(snap, affinity(term({ app: "nothing" })))).toEqual([]);
  });

  it("lets the first pod of a group that matches its own terms go anywhere", () => {
    const snap = buildSnapshot(nodes);
    expect(feasible(snap, { labels: { app: "cache" }, ...affinity(term({ app: "cache" })) })).toEqual(["a", "b", "c"]);
  });

  it("needs the topology key on the node", () => {
    const snap = buildSnapshot([makeNode("nozone")], [makePod("cache", { node: "nozone", labels: { app: "cache" } })]);
    expect(feasible(snap, affinity(term({ app: "cache" }, "zone")))).toEqual([]);
  });
});
