import { describe, expect, it } from "vitest";
import { addPodToNode, newNodeInfo, setNode } from "../node-info.ts";
import { podInfoOf } from "../pod-info.ts";
import { schedule, type Scheduled } from "../schedule.ts";
import { makeNode, makePod, seededRng } from "../testing.ts";
import { workloadSpread } from "./spread.ts";

describe("WorkloadSpread", () => {
  it("spreads a controller's pods evenly across equal nodes", () => {
    const infos = ["a", "b", "c", "d"].map((n) => {
      const info = newNodeInfo(n);
      setNode(info, makeNode(n));
      return info;
    });
    const snap = { nodes: infos };
    const rng = seededRng(7);
    for (let i = 0; i < 40; i++) {
      const pod = makePod(`web-${i}`, { owner: "web", labels: { app: "web" } });
      const r = schedule(pod, snap, { scorers: [workloadSpread], rng }) as Scheduled;
      addPodToNode(infos.find((n) => n.name === r.node)!, podInfoOf(pod));
    }
    expect(infos.map((n) => n.workloads.get("owner:uid-rs-web"))).toEqual([10, 10, 10, 10]);
  });

  it("groups pods without a controller by namespace and labels", () => {
    expect(podInfoOf(makePod("x", { labels: { b: "2", a: "1" } })).workload).toBe("labels:default:a=1,b=2");
    expect(podInfoOf(makePod("y")).workload).toBeUndefined();
    expect(workloadSpread.prepare(podInfoOf(makePod("y")), { nodes: [] })).toBeUndefined();
  });
});
