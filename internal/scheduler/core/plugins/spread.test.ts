import { describe, expect, it } from "vitest";
import { addPodToNode, newNodeInfo, removePodFromNode, setNode, workloadCount, type WorkloadIndex } from "../node-info.ts";
import { podInfoOf } from "../pod-info.ts";
import { schedule, type Scheduled } from "../schedule.ts";
import { makeNode, makePod, seededRng } from "../testing.ts";
import { workloadSpread } from "./spread.ts";

describe("WorkloadSpread", () => {
  it.each([
    ["one index the snapshot shares (the scheduler's cache)", true],
    ["each node's own index", false],
  ])("spreads a controller's pods evenly across equal nodes, counted in %s", (_name, shared) => {
    const workloads: WorkloadIndex = new Map();
    const infos = ["a", "b", "c", "d"].map((n) => {
      const info = shared ? newNodeInfo(n, workloads) : newNodeInfo(n);
      setNode(info, makeNode(n));
      return info;
    });
    const snap = shared ? { nodes: infos, workloads } : { nodes: infos };
    const rng = seededRng(7);
    for (let i = 0; i < 40; i++) {
      const pod = makePod(`web-${i}`, { owner: "web", labels: { app: "web" } });
      const r = schedule(pod, snap, { scorers: [workloadSpread], rng }) as Scheduled;
      addPodToNode(infos.find((n) => n.name === r.node)!, podInfoOf(pod));
    }
    expect(infos.map((n) => workloadCount(n, "owner:uid-rs-web"))).toEqual([10, 10, 10, 10]);
    // Pods that go stop counting: the node they left is preferred next.
    for (const p of [...infos[2].pods.values()].slice(0, 3)) removePodFromNode(infos[2], p.uid);
    const next = schedule(makePod("web-next", { owner: "web", labels: { app: "web" } }), snap, { scorers: [workloadSpread], rng }) as Scheduled;
    expect(next.node).toBe("c");
  });

  it("forgets a workload once none of its pods is counted anywhere", () => {
    const workloads: WorkloadIndex = new Map();
    const info = newNodeInfo("a", workloads);
    const pod = podInfoOf(makePod("web-0", { owner: "web" }));
    addPodToNode(info, pod);
    expect(workloads.size).toBe(1);
    removePodFromNode(info, pod.uid);
    expect(workloads.size).toBe(0);
  });

  it("groups pods without a controller by namespace and labels", () => {
    expect(podInfoOf(makePod("x", { labels: { b: "2", a: "1" } })).workload).toBe("labels:default:a=1,b=2");
    expect(podInfoOf(makePod("y")).workload).toBeUndefined();
    expect(workloadSpread.prepare(podInfoOf(makePod("y")), { nodes: [] })).toBeUndefined();
  });
});
