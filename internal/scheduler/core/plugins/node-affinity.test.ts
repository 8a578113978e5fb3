import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../framework.ts";
import { filterNodes, schedule, type Unschedulable } from "../schedule.ts";
import { makeNode, makePod, type PodOpts } from "../testing.ts";
import { nodeAffinity, preferredNodeAffinity } from "./node-affinity.ts";
import { podInfoOf } from "../pod-info.ts";

const snap = buildSnapshot([
  makeNode("a", { labels: { zone: "z1", disk: "ssd", gen: "3" } }),
  makeNode("b", { labels: { zone: "z2", gen: "5" } }),
  makeNode("c", { labels: { zone: "z3", gen: "x" } }),
]);

/** The nodes a pod may go to under node affinity alone. */
function feasible(opts: PodOpts): string[] {
  return filterNodes(makePod("p", opts), snap, [nodeAffinity]).feasible.map((n) => n.name);
}

const required = (...terms: object[]): PodOpts => ({
  affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } },
});
const expr = (key: string, operator: string, values: string[] = []) => ({ matchExpressions: [{ key, operator, values }] });

describe("NodeAffinity filter", () => {
  it("nodeSelector: every pair must match", () => {
    expect(feasible({ nodeSelector: { zone: "z1" } })).toEqual(["a"]);
    expect(feasible({ nodeSelector: { zone: "z1", disk: "hdd" } })).toEqual([]);
    expect(feasible({ nodeSelector: { constructor: "x" } })).toEqual([]);
  });

  it("operators In, NotIn, Exists, DoesNotExist, Gt, Lt", () => {
    expect(feasible(required(expr("zone", "In", ["z1", "z2"])))).toEqual(["a", "b"]);
    expect(feasible(required(expr("zone", "NotIn", ["z1"])))).toEqual(["b", "c"]);
    expect(feasible(required(expr("disk", "NotIn", ["hdd"])))).toEqual(["a", "b", "c"]);
    expect(feasible(required(expr("disk", "Exists")))).toEqual(["a"]);
    expect(feasible(required(expr("disk", "DoesNotExist")))).toEqual(["b", "c"]);
    expect(feasible(required(expr("gen", "Gt", ["3"])))).toEqual(["b"]); // "x" is not a number
    expect(feasible(required(expr("gen", "Lt", ["5"])))).toEqual(["a"]);
    expect(feasible(required(expr("gen", "Gt", ["1", "2"])))).toEqual([]);
  });

  it("terms are ORed, requirements inside a term ANDed; an empty term matches nothing", () => {
    expect(feasible(required(expr("zone", "In", ["z1"]), expr("zone", "In", ["z3"])))).toEqual(["a", "c"]);
    expect(feasible(required({ matchExpressions: [{ key: "zone", operator: "In", values: ["z1", "z2"] }, { key: "disk", operator: "Exists", values: [] }] }))).toEqual(["a"]);
    expect(feasible(required({}))).toEqual([]);
  });

  it("matchFields on metadata.name", () => {
    expect(feasible(required({ matchFields: [{ key: "metadata.name", operator: "In", values: ["b"] }] }))).toEqual(["b"]);
    expect(feasible(required({ matchFields: [{ key: "metadata.name", operator: "NotIn", values: ["b"] }] }))).toEqual(["a", "c"]);
    expect(feasible(required({ matchFields: [{ key: "metadata.uid", operator: "In", values: ["x"] }] }))).toEqual([]);
  });

  it("nodeSelector and affinity must both hold, with kube's reason", () => {
    const r = schedule(makePod("p", { nodeSelector: { zone: "z2" }, ...required(expr("disk", "Exists")) }), snap) as Unschedulable;
    expect(r.message).toBe("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.");
  });
});

describe("preferred node affinity", () => {
  it("adds the weights of matching terms, normalized to the best node", () => {
    const pod = makePod("p", {
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 10, preference: expr("zone", "In", ["z2"]) },
            { weight: 30, preference: expr("gen", "Gt", ["2"]) },
          ],
        },
      },
    });
    const scorer = preferredNodeAffinity.prepare(podInfoOf(pod), snap)!;
    const scores = Float64Array.from(snap.nodes.map((n) => scorer.score(n)));
    expect([...scores]).toEqual([30, 40, 0]);
    scorer.normalize!(scores);
    expect([...scores]).toEqual([75, 100, 0]);
    for (let i = 0; i < 20; i++) expect(schedule(pod, snap, { scorers: [preferredNodeAffinity] })).toMatchObject({ node: "b" });
  });
});
