import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { gone, sleep, startTestCluster, testNode, testPod, waitFor, type TestCluster } from "../node/testing.ts";
import { createPodGcController, planPodGc } from "./podgc.ts";

function pod(name: string, o: { phase?: string; createdMs?: number; node?: string; deleting?: boolean; grace?: bigint } = {}): Pod {
  const p = testPod(name, { nodeName: o.node ?? "" });
  p.metadata!.creationTimestamp = timestampFromMs(o.createdMs ?? 0);
  p.status = { phase: o.phase ?? "Running" } as any;
  if (o.deleting) {
    p.metadata!.deletionTimestamp = timestampFromMs(0);
    p.metadata!.deletionGracePeriodSeconds = o.grace ?? 30n;
  }
  return p;
}

const names = (plan: ReturnType<typeof planPodGc>) => plan.delete.map((d) => `${d.pod.metadata!.name}:${d.reason}`);

describe("planPodGc", () => {
  const opts = { terminatedPodGcThreshold: 2, orphanGraceMs: 1000 };
  it("deletes the oldest terminated pods beyond the threshold", () => {
    const pods = [pod("new", { phase: "Failed", createdMs: 30 }), pod("old", { phase: "Succeeded", createdMs: 10 }), pod("mid", { phase: "Failed", createdMs: 20 }), pod("oldest", { phase: "Succeeded", createdMs: 5 }), pod("run", { createdMs: 1 })];
    expect(names(planPodGc(pods, new Set(), new Map(), opts, 0))).toEqual(["oldest:Terminated", "old:Terminated"]);
    expect(names(planPodGc(pods, new Set(), new Map(), { ...opts, terminatedPodGcThreshold: 0 }, 0))).toEqual([]);
  });

  it("deletes pods of a missing node once it has been missing for the grace period", () => {
    const missing = new Map<string, number>();
    const pods = [pod("a", { node: "dead" }), pod("b", { node: "live" })];
    let plan = planPodGc(pods, new Set(["live"]), missing, opts, 5000);
    expect(names(plan)).toEqual([]);
    expect(plan.nextInMs).toBe(1000);
    expect(missing.get("dead")).toBe(5000);
    plan = planPodGc(pods, new Set(["live"]), missing, opts, 6000);
    expect(names(plan)).toEqual(["a:Orphaned"]);
    // The node is back: forgotten.
    planPodGc(pods, new Set(["live", "dead"]), missing, opts, 7000);
    expect(missing.size).toBe(0);
  });

  it("deletes unscheduled pods stuck terminating (not ones only waiting on finalizers)", () => {
    const pods = [pod("stuck", { deleting: true }), pod("finalizing", { deleting: true, grace: 0n }), pod("bound", { deleting: true, node: "n" })];
    expect(names(planPodGc(pods, new Set(["n"]), new Map(), opts, 0))).toEqual(["stuck:UnscheduledTerminating"]);
  });
});

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe("pod GC controller", () => {
  it("keeps the newest terminated pods up to the threshold", async () => {
    cluster = await startTestCluster({ terminatedPodGcThreshold: 2 });
    const pods = cluster.client<Pod>("Pod");
    for (const name of ["t1", "t2", "t3", "t4"]) {
      const p = await pods.create(testPod(name));
      p.status!.phase = "Succeeded";
      await pods.updateStatus(p);
      await sleep(20); // distinct creation times
    }
    await pods.create(testPod("running"));
    await cluster.start(createPodGcController(cluster.ctx, { intervalMs: 100 }));
    await waitFor("two oldest deleted", async () => (await pods.list("default")).items.length === 3);
    expect((await pods.list("default")).items.map((p) => p.metadata!.name).sort()).toEqual(["running", "t3", "t4"]);
  });

  it("force-deletes pods bound to a node that was deleted, after the grace period", async () => {
    cluster = await startTestCluster();
    const pods = cluster.client<Pod>("Pod");
    const nodes = cluster.client<Node>("Node");
    await nodes.create(testNode("n1", { ready: "True" }));
    await pods.create(testPod("on-n1", { nodeName: "n1" }));
    await pods.create(testPod("never-existed", { nodeName: "ghost" }));
    await cluster.start(createPodGcController(cluster.ctx, { intervalMs: 5000, orphanGraceMs: 400 }));
    await waitFor("ghost's pod deleted", () => gone(pods, "default", "never-existed"));
    await sleep(300);
    expect(await gone(pods, "default", "on-n1")).toBe(false);
    const deletedAt = Date.now();
    await nodes.delete("", "n1");
    await waitFor("n1's pod deleted", () => gone(pods, "default", "on-n1"));
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(350);
  });
});
