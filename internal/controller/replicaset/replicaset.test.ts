import { clone, create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConditionSchema, type Condition } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../../gen/skiff/v1alpha1/pod_service_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { startApiServer } from "../../apiserver/server.ts";
import { createEventRecorder } from "../../client/events.ts";
import { createSharedInformerFactory } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createApiTransport } from "../../client/transport.ts";
import { createMemoryStore } from "../../storage/memory.ts";
import { isPodActive } from "./pods.ts";
import { createReplicaSetController, slowStartBatch, type ReplicaSetControllerOptions } from "./replicaset.ts";
import { auditReplicaSets, quietLog, replicaSet, sleep, testTransport, waitFor } from "./testing.ts";
import { adminCredentials, testPki } from "../../pki/testing.ts";

const POD_CREATE = "skiff.v1alpha1.PodService/Create";
const POD_WATCH = "skiff.v1alpha1.PodService/Watch";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(opts: ReplicaSetControllerOptions = {}) {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  cleanups.push(() => server.close());
  const base = createApiTransport(server.url, adminCredentials());
  const transport = testTransport(base);
  const informers = createSharedInformerFactory(transport);
  const recorder = createEventRecorder({ transport: base, component: "test" });
  const ctrl = createReplicaSetController({ transport, informers, recorder, log: quietLog() }, opts);
  informers.start();
  await informers.waitForSync();
  ctrl.run();
  cleanups.push(() => informers.stop(), () => ctrl.stop());
  const rss = createResourceClient<ReplicaSet>(base, "ReplicaSet");
  const pods = createResourceClient<Pod>(base, "Pod");
  const podService = createClient(PodService, base);
  /** Active pods controlled by the ReplicaSet, read from the API. */
  const owned = async (rs: ReplicaSet | string) => {
    const name = typeof rs === "string" ? rs : rs.metadata!.name;
    const cur = await rss.get("default", name);
    return (await pods.list("default")).items.filter((p) => isPodActive(p) && p.metadata?.ownerReferences.some((r) => r.controller && r.uid === cur.metadata?.uid));
  };
  return { server, transport, ctrl, rss, pods, podService, owned, recorder };
}

async function makeReady(pods: ReturnType<typeof createResourceClient<Pod>>, pod: Pod, sinceMs = Date.now()): Promise<Pod> {
  const next = clone(PodSchema, await pods.get("default", pod.metadata!.name));
  next.status!.phase = "Running";
  next.status!.conditions = [create(ConditionSchema, { type: "Ready", status: "True", lastTransitionTime: timestampFromMs(sinceMs) })];
  return pods.updateStatus(next);
}

describe("slowStartBatch", () => {
  it("runs 1, 2, 4, … at a time and stops after a batch with a failure", async () => {
    let calls = 0;
    let inFlight = 0;
    const batches: number[] = [];
    const r = await slowStartBatch(20, 1, async () => {
      const n = ++calls;
      inFlight++;
      batches.push(inFlight);
      await sleep(5);
      inFlight--;
      if (n === 9) throw new Error("boom");
    });
    // batches 1, 2, 4 succeed (7); the batch of 8 has one failure: 7 more succeed; 5 never tried.
    expect(calls).toBe(15);
    expect(r.successes).toBe(14);
    expect(String(r.error)).toMatch(/boom/);
    expect(Math.max(...batches)).toBe(8);
    expect(await slowStartBatch(0, 1, async () => {})).toEqual({ successes: 0 });
  });
});

describe("ReplicaSet controller (apiserver on the memory store)", () => {
  it("creates the replicas from the template, owned by the ReplicaSet, and reports status", async () => {
    const h = await setup();
    const rs = await h.rss.create(replicaSet("web", 3));
    const pods = await waitFor(async () => ((await h.owned("web")).length === 3 ? h.owned("web") : undefined), "3 pods");
    for (const p of pods) {
      expect(p.metadata?.name).toMatch(/^web-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
      expect(p.metadata?.labels).toEqual({ app: "web" });
      const ref = p.metadata!.ownerReferences[0];
      expect(ref).toMatchObject({ kind: "ReplicaSet", apiVersion: "apps/v1", name: "web", uid: rs.metadata!.uid, controller: true, blockOwnerDeletion: true });
      expect(p.spec?.containers[0].image).toBe("skiff.local/busybox:v1");
    }
    const st = await waitFor(async () => {
      const cur = await h.rss.get("default", "web");
      return cur.status?.replicas === 3 ? cur.status : undefined;
    }, "status");
    expect(st).toMatchObject({ replicas: 3, fullyLabeledReplicas: 3, readyReplicas: 0, availableReplicas: 0, observedGeneration: 1n });
    expect(h.transport.calls(POD_CREATE)).toBe(3);
  });

  it("creates in slow-start batches and reports ReplicaFailure until creates succeed again", async () => {
    const h = await setup();
    h.transport.failWhen(POD_CREATE, (n) => n === 4);
    // The condition may be set and cleared again between two polls: record every status on a watch.
    const watching = new AbortController();
    cleanups.push(() => watching.abort());
    const conditions: Condition[] = [];
    void (async () => {
      for await (const ev of h.rss.watch("default", { fieldSelector: "metadata.name=batch", signal: watching.signal })) {
        conditions.push(...(ev.object.status?.conditions ?? []).filter((c) => c.type === "ReplicaFailure"));
      }
    })().catch(() => undefined);
    await sleep(100); // the watch is established
    await h.rss.create(replicaSet("batch", 10));
    const failed = await waitFor(async () => conditions.find((c) => c.status === "True"), "ReplicaFailure");
    expect(failed).toMatchObject({ status: "True", reason: "FailedCreate" });
    expect(failed.message).toMatch(/injected failure/);
    // First sync: batches of 1, 2, then 4 of which one failed; the other 3 of that batch exist.
    expect((await h.owned("batch")).length).toBeGreaterThanOrEqual(6);
    await waitFor(async () => (await h.owned("batch")).length === 10, "10 pods after the retry");
    await waitFor(async () => {
      const cur = await h.rss.get("default", "batch");
      return cur.status?.replicas === 10 && !cur.status.conditions.some((c) => c.type === "ReplicaFailure");
    }, "ReplicaFailure cleared");
    expect(h.transport.calls(POD_CREATE)).toBe(11); // 10 pods + the one failure, never more
  });

  it("scales down by deleting the least valuable pods first", async () => {
    const h = await setup();
    await h.rss.create(replicaSet("rank", 4));
    const pods = await waitFor(async () => ((await h.owned("rank")).length === 4 ? h.owned("rank") : undefined), "4 pods");
    // Two pods scheduled and one of them ready; two unscheduled.
    const [a, b] = pods;
    await h.podService.bind({ namespace: "default", name: a.metadata!.name, nodeName: "n1" });
    await h.podService.bind({ namespace: "default", name: b.metadata!.name, nodeName: "n1" });
    await makeReady(h.pods, b);
    const cur = await h.rss.get("default", "rank");
    cur.spec!.replicas = 2;
    cur.metadata!.resourceVersion = ""; // the controller writes status meanwhile: update unconditionally
    await h.rss.update(cur);
    await waitFor(async () => (await h.owned("rank")).length === 2, "2 pods");
    expect((await h.owned("rank")).map((p) => p.metadata!.name).sort()).toEqual([a.metadata!.name, b.metadata!.name].sort());
    cur.spec!.replicas = 1;
    cur.metadata!.resourceVersion = "";
    await h.rss.update(cur);
    await waitFor(async () => (await h.owned("rank")).length === 1, "1 pod");
    expect((await h.owned("rank"))[0].metadata!.name).toBe(b.metadata!.name); // the ready one stays
  });

  it("adopts matching orphans, releases pods that stop matching, and replaces them", async () => {
    const h = await setup();
    const orphan = create(PodSchema, {
      metadata: { name: "orphan", namespace: "default", labels: { app: "adopt" } },
      spec: { containers: [{ name: "main", image: "skiff.local/busybox:v1" }] },
    });
    await h.pods.create(orphan);
    const rs = await h.rss.create(replicaSet("adopt", 2));
    await waitFor(async () => (await h.owned("adopt")).length === 2, "2 pods");
    const adopted = await h.pods.get("default", "orphan");
    expect(adopted.metadata?.ownerReferences).toHaveLength(1);
    expect(adopted.metadata?.ownerReferences[0]).toMatchObject({ uid: rs.metadata!.uid, controller: true });
    expect(h.transport.calls(POD_CREATE)).toBe(1); // only one was missing

    // Relabel it: it is released (no owner) and replaced.
    const relabel = clone(PodSchema, adopted);
    relabel.metadata!.labels = { app: "elsewhere" };
    await h.pods.update(relabel);
    await waitFor(async () => (await h.pods.get("default", "orphan")).metadata?.ownerReferences.length === 0, "release");
    await waitFor(async () => (await h.owned("adopt")).length === 2 && h.transport.calls(POD_CREATE) === 2, "replacement");
  });

  it("replaces a pod being deleted (it no longer counts) and leaves other controllers' pods alone", async () => {
    const h = await setup();
    await h.rss.create(replicaSet("repl", 2));
    const pods = await waitFor(async () => ((await h.owned("repl")).length === 2 ? h.owned("repl") : undefined), "2 pods");
    // A bound pod is deleted gracefully: it stays (with a deletion timestamp) until its node confirms.
    await h.podService.bind({ namespace: "default", name: pods[0].metadata!.name, nodeName: "n1" });
    await h.pods.delete("default", pods[0].metadata!.name);
    expect((await h.pods.get("default", pods[0].metadata!.name)).metadata?.deletionTimestamp).toBeDefined();
    await waitFor(async () => (await h.owned("repl")).length === 2 && h.transport.calls(POD_CREATE) === 3, "replacement");

    // A pod with the same labels controlled by someone else is not adopted and does not count.
    const foreign = create(PodSchema, {
      metadata: { name: "foreign", namespace: "default", labels: { app: "repl" }, ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "other", uid: "1234", controller: true }] },
      spec: { containers: [{ name: "main", image: "x" }] },
    });
    await h.pods.create(foreign);
    await sleep(300);
    expect((await h.pods.get("default", "foreign")).metadata?.ownerReferences[0].uid).toBe("1234");
    expect((await h.owned("repl")).length).toBe(2);
  });

  it("does not manage a ReplicaSet that is being deleted", async () => {
    const h = await setup();
    await h.rss.create(replicaSet("dying", 2, { finalizers: ["example.com/hold"] }));
    const pods = await waitFor(async () => ((await h.owned("dying")).length === 2 ? h.owned("dying") : undefined), "2 pods");
    await h.rss.delete("default", "dying");
    await waitFor(async () => (await h.rss.get("default", "dying")).metadata?.deletionTimestamp, "deletion timestamp");
    await h.pods.delete("default", pods[0].metadata!.name);
    await sleep(400);
    expect((await h.owned("dying")).length).toBe(1);
    expect(h.transport.calls(POD_CREATE)).toBe(2);
  });

  it("counts pods available only after minReadySeconds", async () => {
    const h = await setup();
    await h.rss.create(replicaSet("slow", 1, { minReadySeconds: 1 }));
    const [pod] = await waitFor(async () => ((await h.owned("slow")).length === 1 ? h.owned("slow") : undefined), "1 pod");
    await makeReady(h.pods, pod);
    const st = await waitFor(async () => {
      const cur = await h.rss.get("default", "slow");
      return cur.status?.readyReplicas === 1 ? cur.status : undefined;
    }, "ready");
    expect(st.availableReplicas).toBe(0);
    await waitFor(async () => (await h.rss.get("default", "slow")).status?.availableReplicas === 1, "available after 1s", 5000);
  });

  it("never creates more than replicas while the pod informer lags (expectations)", async () => {
    const h = await setup();
    h.transport.pause(POD_WATCH); // the controller's pod cache stops hearing about new pods
    const rs = await h.rss.create(replicaSet("lag", 3));
    await waitFor(() => h.transport.calls(POD_CREATE) === 3, "3 creates");
    // Poke the ReplicaSet again and again: every poke is a sync over a cache that shows no pods.
    for (let i = 0; i < 10; i++) {
      const cur = await h.rss.get("default", "lag");
      cur.metadata!.annotations = { poke: String(i) };
      cur.metadata!.resourceVersion = "";
      await h.rss.update(cur);
      await sleep(30);
    }
    expect(h.transport.calls(POD_CREATE)).toBe(3);
    expect(h.ctrl.expectations.pending("default/lag")?.creations).toBe(3);
    h.transport.resume(POD_WATCH);
    await waitFor(() => h.ctrl.expectations.satisfied("default/lag"), "expectations met");
    await sleep(200);
    expect((await h.owned(rs)).length).toBe(3);
    expect(h.transport.calls(POD_CREATE)).toBe(3);
  });

  it("control: without expectations (timed out at once) the same lag over-creates", async () => {
    const h = await setup({ expectations: { timeoutMs: 0 } });
    const audit = auditReplicaSets(createApiTransport(h.server.url, adminCredentials()));
    cleanups.push(() => audit.stop());
    await audit.ready();
    h.transport.pause(POD_WATCH);
    await h.rss.create(replicaSet("lag0", 3));
    await waitFor(() => h.transport.calls(POD_CREATE) >= 3, "3 creates");
    for (let i = 0; i < 5; i++) {
      const cur = await h.rss.get("default", "lag0");
      cur.metadata!.annotations = { poke: String(i) };
      cur.metadata!.resourceVersion = "";
      await h.rss.update(cur);
      await sleep(30);
    }
    await waitFor(() => h.transport.calls(POD_CREATE) > 3, "over-creation");
    h.transport.resume(POD_WATCH);
    // The audit used by the integration tests notices.
    await sleep(100);
    expect(audit.check().violations.length).toBeGreaterThan(0);
  });

  it("forgets expectations when the ReplicaSet is deleted and leaves its pods to the garbage collector", async () => {
    const h = await setup();
    h.transport.pause(POD_WATCH);
    await h.rss.create(replicaSet("gone", 2));
    await waitFor(() => h.transport.calls(POD_CREATE) === 2, "2 creates");
    expect(h.ctrl.expectations.pending("default/gone")).toBeDefined();
    await h.rss.delete("default", "gone");
    await waitFor(() => h.ctrl.expectations.pending("default/gone") === undefined, "forgotten");
    h.transport.resume(POD_WATCH);
    await sleep(200);
    expect((await h.pods.list("default")).items).toHaveLength(2);
    expect(h.transport.calls(POD_CREATE)).toBe(2);
  });

  it("writes status only when it changes (observedGeneration follows spec changes)", async () => {
    const h = await setup();
    await h.rss.create(replicaSet("gen", 1));
    await waitFor(async () => (await h.rss.get("default", "gen")).status?.replicas === 1, "status");
    const cur = await h.rss.get("default", "gen");
    const rv = cur.metadata!.resourceVersion;
    await sleep(300);
    expect((await h.rss.get("default", "gen")).metadata!.resourceVersion).toBe(rv);
    const next = clone(ReplicaSetSchema, cur);
    next.spec!.template!.spec!.containers[0].image = "skiff.local/busybox:v2";
    await h.rss.update(next);
    await waitFor(async () => (await h.rss.get("default", "gen")).status?.observedGeneration === 2n, "observedGeneration 2");
  });
});
