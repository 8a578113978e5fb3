import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../framework.ts";
import { schedule, type Unschedulable } from "../schedule.ts";
import { makeNode, makePod } from "../testing.ts";
import { balancedAllocation, leastAllocated, nodeResourcesFit } from "./resource-fit.ts";
import { podInfoOf } from "../pod-info.ts";
import { addPodToNode, removePodFromNode } from "../node-info.ts";

const only = { filters: [nodeResourcesFit], scorers: [] };

describe("NodeResourcesFit", () => {
  it("fits a pod in allocatable minus what bound pods request", () => {
    const snap = buildSnapshot([makeNode("n1", { cpu: "2", memory: "4Gi" })], [makePod("a", { node: "n1", cpu: "1500m", memory: "1Gi" })]);
    expect(schedule(makePod("fits", { cpu: "500m" }), snap, only)).toMatchObject({ node: "n1" });
    const r = schedule(makePod("big", { cpu: "600m", memory: "4Gi" }), snap, only) as Unschedulable;
    expect(r.reasons).toEqual({ n1: ["Insufficient cpu", "Insufficient memory"] });
    expect(r.message).toBe("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
  });

  it("gives back what a removed pod held: the next pod fits and scores as on an empty node", () => {
    const snap = buildSnapshot([makeNode("n1", { cpu: "2", memory: "4Gi", pods: "1" })]);
    const node = snap.nodes[0];
    const empty = { least: leastAllocated.prepare(podInfoOf(makePod("probe", { cpu: "1", memory: "1Gi" })), snap)!.score(node) };
    const held = podInfoOf(makePod("a", { node: "n1", cpu: "1500m", memory: "3Gi" }));
    addPodToNode(node, held);
    const r = schedule(makePod("next", { cpu: "1", memory: "2Gi" }), snap, only) as Unschedulable;
    expect(r.reasons).toEqual({ n1: ["Too many pods", "Insufficient cpu", "Insufficient memory"] });
    removePodFromNode(node, held.uid);
    expect(schedule(makePod("next", { cpu: "1", memory: "2Gi" }), snap, only)).toMatchObject({ node: "n1" });
    expect(leastAllocated.prepare(podInfoOf(makePod("probe", { cpu: "1", memory: "1Gi" })), snap)!.score(node)).toBe(empty.least);
  });

  it("holds a node that does not report a pod count to no limit", () => {
    const node = makeNode("n1", { cpu: "100", memory: "100Gi" });
    delete node.status!.allocatable.pods;
    const snap = buildSnapshot([node], Array.from({ length: 300 }, (_, i) => makePod(`p${i}`, { node: "n1", cpu: "10m" })));
    expect(snap.nodes[0].podCount).toBe(300);
    expect(schedule(makePod("one-more", { cpu: "10m" }), snap, only)).toMatchObject({ node: "n1" });
  });

  it("does not count Succeeded or Failed pods", () => {
    const snap = buildSnapshot(
      [makeNode("n1", { cpu: "1" })],
      [makePod("done", { node: "n1", cpu: "1", phase: "Succeeded" }), makePod("dead", { node: "n1", cpu: "1", phase: "Failed" })],
    );
    expect(schedule(makePod("p", { cpu: "1" }), snap, only)).toMatchObject({ node: "n1" });
  });

  it("limits the number of pods", () => {
    const snap = buildSnapshot([makeNode("n1", { pods: "2" })], [makePod("a", { node: "n1" }), makePod("b", { node: "n1" })]);
    expect((schedule(makePod("c"), snap, only) as Unschedulable).reasons).toEqual({ n1: ["Too many pods"] });
  });

  it("checks extended resources, which a node must list", () => {
    const snap = buildSnapshot([makeNode("plain"), makeNode("gpu", { extra: { "example.com/gpu": "1" } })]);
    expect(schedule(makePod("p", { extra: { "example.com/gpu": "1" } }), snap, only)).toMatchObject({ node: "gpu" });
    const r = schedule(makePod("p", { extra: { "example.com/gpu": "2" } }), snap, only) as Unschedulable;
    expect(r.message).toBe("0/2 nodes are available: 2 Insufficient example.com/gpu.");
  });

  it("takes the init container's larger request into account", () => {
    const snap = buildSnapshot([makeNode("n1", { cpu: "1" })]);
    expect(schedule(makePod("p", { cpu: "100m", init: { cpu: "2" } }), snap, only)).toMatchObject({ reasons: { n1: ["Insufficient cpu"] } });
  });

  it("does not hold nodes that report no ephemeral-storage to it", () => {
    const snap = buildSnapshot([makeNode("n1")]);
    expect(schedule(makePod("p", { extra: { "ephemeral-storage": "1Gi" } }), snap, only)).toMatchObject({ node: "n1" });
  });
});

describe("resource scores", () => {
  const score = (plugin: typeof leastAllocated, podOpts: Parameters<typeof makePod>[1], nodes = buildSnapshot([makeNode("n1", { cpu: "4", memory: "4Gi" })])) =>
    plugin.prepare(podInfoOf(makePod("p", podOpts)), nodes)!.score(nodes.nodes[0]);

  it("least allocated: the free share of cpu and memory after placing the pod", () => {
    expect(score(leastAllocated, { cpu: "2", memory: "2Gi" })).toBe(50);
    expect(score(leastAllocated, { cpu: "4", memory: "1Gi" })).toBe(37.5);
    expect(score(leastAllocated, { cpu: "8", memory: "8Gi" })).toBe(0);
  });

  it("balanced allocation: best when cpu and memory are used alike", () => {
    expect(score(balancedAllocation, { cpu: "2", memory: "2Gi" })).toBe(100);
    expect(score(balancedAllocation, { cpu: "4", memory: "0" })).toBeLessThan(score(balancedAllocation, { cpu: "2", memory: "1Gi" }));
  });

  it("prefers the emptier node", () => {
    const snap = buildSnapshot([makeNode("busy"), makeNode("idle")], [makePod("a", { node: "busy", cpu: "2", memory: "4Gi" })]);
    for (let i = 0; i < 10; i++) expect(schedule(makePod(`p${i}`, { cpu: "100m" }), snap)).toMatchObject({ node: "idle" });
  });
});
