import { clone, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import type { Lease } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { NodeSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { ConditionSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { NODE_LEASE_NAMESPACE } from "../../agent/lease.ts";
import { createNodeLifecycleController, type NodeLifecycleOptions } from "./lifecycle.ts";
import { TAINT_NOT_READY, TAINT_UNREACHABLE } from "./taints.ts";
import { gone, sleep, startTestCluster, testLease, testNode, testPod, waitFor, type TestCluster } from "./testing.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function setup(opts: Partial<NodeLifecycleOptions> = {}) {
  cluster = await startTestCluster();
  const c = cluster;
  return {
    nodes: c.client<Node>("Node"),
    pods: c.client<Pod>("Pod"),
    leases: c.client<Lease>("Lease"),
    start: () => c.start(createNodeLifecycleController(c.ctx, { nodeMonitorGracePeriodMs: 600, podEvictionTimeoutMs: 60_000, ...opts })),
  };
}

const taintsOf = (n: Node) => (n.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).sort();
const ready = (n: Node) => n.status?.conditions.find((c) => c.type === "Ready");

/** Renews the node's lease every 100 ms until stopped. */
function heartbeat(leases: { get: any; update: any }, node: string) {
  let on = true;
  const loop = (async () => {
    while (on) {
      const l: Lease = await leases.get(NODE_LEASE_NAMESPACE, node);
      l.spec!.renewTime = testLease(node).spec!.renewTime;
      await leases.update(l).catch(() => {});
      await sleep(100);
    }
  })();
  return async () => {
    on = false;
    await loop;
  };
}

describe("pod CIDR allocation", () => {
  it("gives each node without one a free range, skipping ranges in use at start", async () => {
    const { nodes, start } = await setup();
    await nodes.create(testNode("old", { podCidr: "10.244.0.0/24", ready: "True" }));
    await nodes.create(testNode("a", { ready: "True" }));
    await start();
    await nodes.create(testNode("b", { ready: "True" }));
    const a = await waitFor("a's CIDR", async () => (await nodes.get("", "a")).spec?.podCidr);
    const b = await waitFor("b's CIDR", async () => (await nodes.get("", "b")).spec?.podCidr);
    expect(new Set([a, b, "10.244.0.0/24"]).size).toBe(3);
    expect((await nodes.get("", "b")).spec?.podCidrs).toEqual([b]);
    expect((await nodes.get("", "old")).spec?.podCidr).toBe("10.244.0.0/24");
  });

  it("releases a deleted node's range for a node that waits for one", async () => {
    const { nodes, start } = await setup({ clusterCidr: "10.9.0.0/23", nodeCidrMaskSize: 24 });
    await nodes.create(testNode("a", { ready: "True" }));
    await nodes.create(testNode("b", { ready: "True" }));
    await start();
    await waitFor("both allocated", async () => (await nodes.list("")).items.every((n) => n.spec?.podCidr));
    await nodes.create(testNode("c", { ready: "True" }));
    await sleep(300);
    expect((await nodes.get("", "c")).spec?.podCidr).toBe("");
    const freed = (await nodes.get("", "a")).spec!.podCidr;
    await nodes.delete("", "a");
    expect(await waitFor("c gets a's range", async () => (await nodes.get("", "c")).spec?.podCidr)).toBe(freed);
  });
});

describe("node health", () => {
  it("marks a silent node Unknown and unreachable, evicts its pods per toleration, lifts the taints on renewal", async () => {
    const { nodes, pods, leases, start } = await setup({ podEvictionTimeoutMs: 2500 });
    await nodes.create(testNode("n1", { ready: "True", podCidr: "10.244.0.0/24" }));
    await leases.create(testLease("n1"));
    const tol = (s?: number) => [{ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoExecute", tolerationSeconds: s === undefined ? undefined : BigInt(s) }];
    await pods.create(testPod("quick", { nodeName: "n1", tolerations: tol(1), graceSeconds: 1 }));
    await pods.create(testPod("default", { nodeName: "n1", graceSeconds: 0 }));
    await pods.create(testPod("forever", { nodeName: "n1", tolerations: tol() }));
    const readyPod = await pods.get("default", "forever");
    readyPod.status!.conditions.push(create(ConditionSchema, { type: "Ready", status: "True" }));
    await pods.updateStatus(readyPod);
    await start();

    const stop = heartbeat(leases, "n1");
    await sleep(1200); // twice the grace period: still healthy while the lease moves
    expect(taintsOf(await nodes.get("", "n1"))).toEqual([]);
    await stop();

    const silentAt = Date.now();
    const n = await waitFor("Unknown + taints", async () => {
      const x = await nodes.get("", "n1");
      return ready(x)?.status === "Unknown" && taintsOf(x).length === 2 && x;
    });
    expect(taintsOf(n)).toEqual([`${TAINT_UNREACHABLE}:NoExecute`, `${TAINT_UNREACHABLE}:NoSchedule`]);
    expect(ready(n)).toMatchObject({ reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status." });
    expect(Date.now() - silentAt).toBeGreaterThanOrEqual(400);
    // Pods on it are no longer Ready (Services stop sending them traffic).
    await waitFor("forever not ready", async () => (await pods.get("default", "forever")).status?.conditions.find((c) => c.type === "Ready")?.status === "False");

    const added = timestampMs(n.spec!.taints[0].timeAdded!);
    // "quick" tolerates 1 s: evicted (graceful, 1 s), then force-deleted since the node is unreachable.
    const quick = await waitFor("quick evicted", async () => (await pods.get("default", "quick")).metadata?.deletionTimestamp && Date.now());
    expect(quick - added).toBeGreaterThanOrEqual(900);
    expect(quick - added).toBeLessThan(2400);
    await waitFor("quick force-deleted", () => gone(pods, "default", "quick"));
    // "default" has no toleration: podEvictionTimeout (2.5 s); its grace is 0, so it goes at once.
    expect(await gone(pods, "default", "default")).toBe(false);
    const def = await waitFor("default evicted", async () => (await gone(pods, "default", "default")) && Date.now());
    expect(def - added).toBeGreaterThanOrEqual(2400);
    expect(await gone(pods, "default", "forever")).toBe(false);

    // The agent comes back: the lease renews and the taints go (Ready is the agent's to set).
    const stop2 = heartbeat(leases, "n1");
    await waitFor("taints lifted", async () => taintsOf(await nodes.get("", "n1")).length === 0);
    await stop2();
    expect((await pods.get("default", "forever")).metadata?.deletionTimestamp).toBeUndefined();
  });

  it("taints a node whose agent reports Ready=False not-ready, and does not force-delete its pods", async () => {
    const { nodes, pods, leases, start } = await setup({ podEvictionTimeoutMs: 300, nodeMonitorGracePeriodMs: 60_000 });
    await nodes.create(testNode("n2", { ready: "False" }));
    await leases.create(testLease("n2"));
    await pods.create(testPod("p", { nodeName: "n2", graceSeconds: 1 }));
    await start();
    await waitFor("not-ready taints", async () => taintsOf(await nodes.get("", "n2")).join() === `${TAINT_NOT_READY}:NoExecute,${TAINT_NOT_READY}:NoSchedule`);
    await waitFor("p evicted", async () => (await pods.get("default", "p")).metadata?.deletionTimestamp);
    await sleep(1500); // past its grace: still there, the reachable agent confirms deletions
    expect(await gone(pods, "default", "p")).toBe(false);

    const n = await nodes.get("", "n2");
    const next = clone(NodeSchema, n);
    next.status!.conditions[0].status = "True";
    await nodes.updateStatus(next);
    await waitFor("taints lifted", async () => taintsOf(await nodes.get("", "n2")).length === 0);
  });

  it("taints a node reporting DiskPressure disk-pressure:NoSchedule while it lasts, evicting nothing", async () => {
    const { nodes, pods, leases, start } = await setup({ nodeMonitorGracePeriodMs: 60_000, podEvictionTimeoutMs: 300 });
    await nodes.create(testNode("n3"));
    await leases.create(testLease("n3"));
    await pods.create(testPod("p", { nodeName: "n3" }));
    await start();
    const setPressure = async (status: string) => {
      const next = clone(NodeSchema, await nodes.get("", "n3"));
      next.status!.conditions = next.status!.conditions.filter((c) => c.type !== "DiskPressure");
      next.status!.conditions.push(create(ConditionSchema, { type: "DiskPressure", status }));
      await nodes.updateStatus(next);
    };
    await setPressure("True");
    await waitFor("disk-pressure taint", async () => taintsOf(await nodes.get("", "n3")).join() === "node.kubernetes.io/disk-pressure:NoSchedule");
    await setPressure("False");
    await waitFor("taint lifted", async () => taintsOf(await nodes.get("", "n3")).length === 0);
    expect((await pods.get("default", "p")).metadata?.deletionTimestamp).toBeUndefined();
  });

  it("after a restart keeps an Unknown node's taints and their timeAdded until a heartbeat moves", async () => {
    const { nodes, leases, start } = await setup({ nodeMonitorGracePeriodMs: 400 });
    await nodes.create(testNode("n3", { ready: "True" }));
    await leases.create(testLease("n3"));
    await start();
    const before = await waitFor("tainted", async () => {
      const x = await nodes.get("", "n3");
      return taintsOf(x).length === 2 && x;
    });
    // A second controller, as after a controller-manager restart, sees the node Unknown and tainted.
    await cluster!.close();
    const restarted = await startTestCluster();
    cluster = restarted;
    const nodes2 = restarted.client<Node>("Node");
    const leases2 = restarted.client<Lease>("Lease");
    const copy = clone(NodeSchema, before);
    copy.metadata!.resourceVersion = "";
    await nodes2.create(copy);
    await leases2.create(testLease("n3", Date.now() - 60_000));
    await restarted.start(createNodeLifecycleController(restarted.ctx, { nodeMonitorGracePeriodMs: 400 }));
    await sleep(250);
    const kept = await nodes2.get("", "n3");
    expect(taintsOf(kept)).toEqual(taintsOf(before));
    expect(kept.spec!.taints.map((t) => t.timeAdded)).toEqual(before.spec!.taints.map((t) => t.timeAdded));
    const stop = heartbeat(leases2, "n3");
    await waitFor("taints lifted", async () => taintsOf(await nodes2.get("", "n3")).length === 0);
    await stop();
  });

  it("marks a node that never posted status Unknown (NodeStatusNeverUpdated)", async () => {
    const { nodes, start } = await setup({ nodeMonitorGracePeriodMs: 300 });
    await nodes.create(testNode("bare"));
    await start();
    const n = await waitFor("Unknown", async () => {
      const x = await nodes.get("", "bare");
      return ready(x)?.status === "Unknown" && taintsOf(x).length === 2 && x;
    });
    expect(ready(n)?.reason).toBe("NodeStatusNeverUpdated");
    expect(taintsOf(n)).toContain(`${TAINT_UNREACHABLE}:NoSchedule`);
  });
});
