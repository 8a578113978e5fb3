import { afterEach, describe, expect, it } from "vitest";
import type { Lease } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { NODE_LEASE_NAMESPACE } from "../../agent/lease.ts";
import { gone, sleep, startTestCluster, testLease, testNode, waitFor, type TestCluster } from "../node/testing.ts";
import { createGarbageCollector, FOREGROUND_FINALIZER, ORPHAN_FINALIZER } from "./gc.ts";
import { createChain, ownedPod, ownerRef, replicaSet } from "./testing-objects.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function setup(kinds?: string[]) {
  cluster = await startTestCluster();
  const c = cluster;
  return {
    c,
    deployments: c.client<Deployment>("Deployment"),
    replicaSets: c.client<ReplicaSet>("ReplicaSet"),
    pods: c.client<Pod>("Pod"),
    start: () => c.start(createGarbageCollector(c.ctx, kinds ? { kinds } : {})),
  };
}

describe("garbage collector", () => {
  it("background: deleting the owner deletes the dependents, recursively", async () => {
    const { c, deployments, replicaSets, pods, start } = await setup();
    await createChain(c);
    await start();
    await sleep(200);
    expect((await pods.list("default")).items).toHaveLength(2); // owners present: nothing collected
    await deployments.delete("default", "web");
    await waitFor("rs collected", () => gone(replicaSets, "default", "web-1"));
    await waitFor("pods collected", async () => (await pods.list("default")).items.length === 0);
  });

  it("collects an object whose owner never existed or was replaced (same name, new uid)", async () => {
    const { replicaSets, pods, start } = await setup();
    const rs = await replicaSets.create(replicaSet("web-1", "web"));
    await pods.create(ownedPod("stale", [{ ...ownerRef("ReplicaSet", rs), uid: "00000000-0000-0000-0000-000000000000" }]));
    await pods.create(ownedPod("kept", [ownerRef("ReplicaSet", rs)]));
    await start();
    await waitFor("stale collected", () => gone(pods, "default", "stale"));
    expect(await gone(pods, "default", "kept")).toBe(false);
  });

  it("an object with another live owner only loses the reference to the gone one", async () => {
    const { replicaSets, pods, start } = await setup();
    const a = await replicaSets.create(replicaSet("a", "web"));
    const b = await replicaSets.create(replicaSet("b", "web"));
    await pods.create(ownedPod("shared", [ownerRef("ReplicaSet", a), ownerRef("ReplicaSet", b, { controller: false })]));
    await start();
    await replicaSets.delete("default", "a");
    await waitFor("reference dropped", async () => (await pods.get("default", "shared")).metadata!.ownerReferences.map((r) => r.name).join() === "b");
  });

  it("foreground: the owner stays until the blocking dependents are gone, the whole chain in order", async () => {
    const { c, deployments, replicaSets, pods, start } = await setup();
    // The pods carry a finalizer of their own, so the cascade visibly waits on them.
    await createChain(c, ["example.com/hold"]);
    await start();
    await deployments.delete("default", "web", { propagationPolicy: "Foreground" });
    const d = await deployments.get("default", "web");
    expect(d.metadata!.finalizers).toContain(FOREGROUND_FINALIZER);
    expect(d.metadata!.deletionTimestamp).toBeDefined();
    // The pods are being deleted; the ReplicaSet and Deployment wait for them.
    await waitFor("pods deleting", async () => (await pods.list("default")).items.every((p) => p.metadata!.deletionTimestamp));
    const rs = await replicaSets.get("default", "web-1");
    expect(rs.metadata!.deletionTimestamp).toBeDefined();
    expect(rs.metadata!.finalizers).toContain(FOREGROUND_FINALIZER);
    await sleep(300);
    expect(await gone(deployments, "default", "web")).toBe(false);

    for (const p of (await pods.list("default")).items) {
      p.metadata!.finalizers = [];
      await pods.update(p);
    }
    await waitFor("deployment gone", () => gone(deployments, "default", "web"));
    expect(await gone(replicaSets, "default", "web-1")).toBe(true);
  });

  it("foreground does not wait for dependents without blockOwnerDeletion", async () => {
    const { replicaSets, pods, start } = await setup();
    const rs = await replicaSets.create(replicaSet("web-1", "web"));
    await pods.create(ownedPod("loose", [ownerRef("ReplicaSet", rs, { block: false })], ["example.com/hold"]));
    await start();
    await replicaSets.delete("default", "web-1", { propagationPolicy: "Foreground" });
    await waitFor("rs gone", () => gone(replicaSets, "default", "web-1"));
    const p = await waitFor("pod deleting", async () => {
      const x = await pods.get("default", "loose");
      return x.metadata!.deletionTimestamp && x;
    });
    p.metadata!.finalizers = [];
    await pods.update(p);
    await waitFor("pod gone", () => gone(pods, "default", "loose"));
  });

  it("orphan: dependents lose the reference and stay; then the owner goes", async () => {
    const { c, deployments, replicaSets, pods, start } = await setup();
    const { rs } = await createChain(c);
    await start();
    await replicaSets.delete("default", "web-1", { propagationPolicy: "Orphan" });
    await waitFor("rs gone", () => gone(replicaSets, "default", "web-1"));
    const left = (await pods.list("default")).items;
    expect(left.map((p) => p.metadata!.name).sort()).toEqual(["web-1-a", "web-1-b"]);
    expect(left.every((p) => !p.metadata!.ownerReferences.some((r) => r.uid === rs.metadata!.uid))).toBe(true);
    expect(left.every((p) => !p.metadata!.deletionTimestamp)).toBe(true);
    await sleep(200);
    expect((await pods.list("default")).items).toHaveLength(2);
    expect(await gone(deployments, "default", "web")).toBe(false);
    expect((await deployments.get("default", "web")).metadata!.finalizers).not.toContain(ORPHAN_FINALIZER);
  });

  it("cluster-scoped owners: a node's lease goes with the node", async () => {
    const { c, start } = await setup();
    const nodes = c.client<Node>("Node");
    const leases = c.client<Lease>("Lease");
    const n = await nodes.create(testNode("n1", { ready: "True" }));
    const l = testLease("n1");
    l.metadata!.ownerReferences = [ownerRef("Node", n, { controller: false, block: false })];
    await leases.create(l);
    await start();
    await sleep(200);
    expect(await gone(leases, NODE_LEASE_NAMESPACE, "n1")).toBe(false);
    await nodes.delete("", "n1");
    await waitFor("lease collected", () => gone(leases, NODE_LEASE_NAMESPACE, "n1"));
  });

  it("owners of kinds it does not watch are checked with a live Get", async () => {
    const { replicaSets, pods, start } = await setup(["Pod"]);
    const rs = await replicaSets.create(replicaSet("web-1", "web"));
    await pods.create(ownedPod("kept", [ownerRef("ReplicaSet", rs)]));
    await pods.create(ownedPod("orphan", [{ ...ownerRef("ReplicaSet", rs), name: "nope" }]));
    await start();
    await waitFor("orphan collected", () => gone(pods, "default", "orphan"));
    expect(await gone(pods, "default", "kept")).toBe(false);
  });
});
