// The ReplicaSet controller end to end: etcd, an apiserver, and the controller-manager running
// only the replicaset controller, with an independent watch auditing every pod of every
// ReplicaSet (no create may ever take a ReplicaSet above its replicas).
import { clone, create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { isPodActive } from "../../internal/controller/replicaset/pods.ts";
import { auditReplicaSets, quietLog, replicaSet, sleep, testTransport, waitFor, type TestTransport } from "../../internal/controller/replicaset/testing.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const POD_CREATE = "skiff.v1alpha1.PodService/Create";
const POD_WATCH = "skiff.v1alpha1.PodService/Watch";

let cp: ControlPlane;
let transport: TestTransport;
let manager: ControllerManager;
let audit: ReturnType<typeof auditReplicaSets>;

beforeAll(async () => {
  cp = await startControlPlane();
  audit = auditReplicaSets(cp.transport);
  await audit.ready();
  transport = testTransport(cp.transport);
  manager = createControllerManager({ transport, log: quietLog(), options: { leaderElect: false, controllers: ["replicaset"] } });
  await manager.start();
  await waitFor(() => manager.isRunning(), "controllers running");
});

afterAll(async () => {
  transport?.resume(POD_WATCH);
  await manager?.stop();
  await audit?.stop();
  await cp?.stop();
});

const rss = () => cp.client<ReplicaSet>("ReplicaSet");
const pods = () => cp.client<Pod>("Pod");

async function owned(name: string): Promise<Pod[]> {
  const rs = await rss().get("default", name);
  return (await pods().list("default")).items.filter((p) => isPodActive(p) && p.metadata?.ownerReferences.some((r) => r.controller && r.uid === rs.metadata?.uid));
}

async function ownedCount(name: string, n: number): Promise<Pod[]> {
  return waitFor(async () => {
    const ps = await owned(name);
    return ps.length === n ? ps : undefined;
  }, `${n} pods of ${name}`);
}

/** Unconditional updates: the controller writes status meanwhile, and we do not care. */
async function change(name: string, fn: (rs: ReplicaSet) => void): Promise<void> {
  const cur = await rss().get("default", name);
  fn(cur);
  cur.metadata!.resourceVersion = "";
  await rss().update(cur);
}

const scale = (name: string, replicas: number) => change(name, (rs) => (rs.spec!.replicas = replicas));

describe("ReplicaSet controller on etcd", () => {
  it("creates 3 pods for a ReplicaSet of 3, with status", async () => {
    await rss().create(replicaSet("web", 3));
    const ps = await ownedCount("web", 3);
    expect(new Set(ps.map((p) => p.metadata!.name)).size).toBe(3);
    await waitFor(async () => (await rss().get("default", "web")).status?.replicas === 3, "status.replicas 3");
    const st = (await rss().get("default", "web")).status!;
    expect(st).toMatchObject({ replicas: 3, fullyLabeledReplicas: 3, observedGeneration: 1n });
  });

  it("scales 3 → 5 → 2, deleting unscheduled pods before scheduled ones", async () => {
    await scale("web", 5);
    const five = await ownedCount("web", 5);
    const bind = createClient(PodService, cp.transport);
    const keep = five.slice(0, 2).map((p) => p.metadata!.name);
    for (const name of keep) await bind.bind({ namespace: "default", name, nodeName: "node-1" });
    await scale("web", 2);
    const two = await ownedCount("web", 2);
    expect(two.map((p) => p.metadata!.name).sort()).toEqual([...keep].sort());
    await sleep(300);
    expect((await owned("web")).length).toBe(2);
  });

  it("replaces a deleted pod", async () => {
    await rss().create(replicaSet("repl", 2));
    const [victim] = await ownedCount("repl", 2);
    await pods().delete("default", victim.metadata!.name);
    const after = await waitFor(async () => {
      const ps = await owned("repl");
      return ps.length === 2 && !ps.some((p) => p.metadata!.name === victim.metadata!.name) ? ps : undefined;
    }, "a replacement");
    expect(after).toHaveLength(2);
  });

  it("adopts a matching orphan, releases a relabelled pod and replaces it", async () => {
    await pods().create(
      create(PodSchema, {
        metadata: { name: "stray", namespace: "default", labels: { app: "adopt" } },
        spec: { containers: [{ name: "main", image: "skiff.local/busybox:v1" }] },
      }),
    );
    const before = transport.calls(POD_CREATE);
    const rs = await rss().create(replicaSet("adopt", 2));
    await ownedCount("adopt", 2);
    const stray = await pods().get("default", "stray");
    expect(stray.metadata?.ownerReferences.map((r) => r.uid)).toEqual([rs.metadata!.uid]);
    expect(transport.calls(POD_CREATE) - before).toBe(1);

    const relabel = clone(PodSchema, stray);
    relabel.metadata!.labels = { app: "elsewhere" };
    await pods().update(relabel);
    await waitFor(async () => (await pods().get("default", "stray")).metadata?.ownerReferences.length === 0, "the pod released");
    const now = await ownedCount("adopt", 2);
    expect(now.some((p) => p.metadata!.name === "stray")).toBe(false);
    expect(transport.calls(POD_CREATE) - before).toBe(2);
  });

  it("never creates more than replicas while the pod informer lags", async () => {
    await rss().create(replicaSet("lag", 2));
    await ownedCount("lag", 2);
    await waitFor(async () => (await rss().get("default", "lag")).status?.replicas === 2, "status 2");
    const before = transport.calls(POD_CREATE);
    transport.pause(POD_WATCH);
    await scale("lag", 6);
    await waitFor(() => transport.calls(POD_CREATE) - before === 4, "4 creates");
    // Keep the controller busy syncing over a cache that shows none of the new pods.
    for (let i = 0; i < 10; i++) {
      await change("lag", (rs) => (rs.metadata!.annotations = { poke: String(i) }));
      await sleep(50);
    }
    // One of the new pods goes away meanwhile; the controller must see that before replacing it.
    const current = await owned("lag");
    expect(current).toHaveLength(6);
    await pods().delete("default", current[5].metadata!.name);
    await sleep(300);
    expect(transport.calls(POD_CREATE) - before).toBe(4);
    transport.resume(POD_WATCH);
    await ownedCount("lag", 6);
    await sleep(500);
    expect((await owned("lag")).length).toBe(6);
    expect(transport.calls(POD_CREATE) - before).toBe(5);
  });

  it("the audit saw no ReplicaSet above its replicas, and exactly the creates needed", async () => {
    await sleep(300);
    const result = audit.check();
    expect(result.violations).toEqual([]);
    // web: 3, then +2 (scale to 5); repl: 2 + 1 replacement; adopt: 1 + 1; lag: 2 + 4 + 1.
    expect(Object.fromEntries(result.creates)).toEqual({ web: 5, repl: 3, adopt: 2, lag: 7 });
    expect(result.maxActive.get("web")).toBe(5);
  });
});
