// Leader handover between controller-managers on a real control plane (etcd + apiserver): one is
// active, the others stand by; a leader that stops hands over at once, one cut off from the
// apiserver is replaced within the lease duration. An independent watch audits every pod: no
// ReplicaSet ever had more active pods than replicas, and no missing replica was created twice.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { createControllerManager, fencedTransport, selectControllers, type ControllerManager } from "../../internal/controller/manager.ts";
import { parseBool, parseDuration } from "../../internal/cmd/controller-manager.ts";
import { isPodActive } from "../../internal/controller/replicaset/pods.ts";
import { auditReplicaSets, quietLog, replicaSet, sleep, waitFor } from "../../internal/controller/replicaset/testing.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCuttableProxy, type CuttableProxy } from "../client/tcp-proxy.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const TIMING = { leaseDurationMs: 2000, renewDeadlineMs: 1300, retryPeriodMs: 250 };

let cp: ControlPlane;
let audit: ReturnType<typeof auditReplicaSets>;
const managers: { m: ControllerManager; proxy: CuttableProxy }[] = [];
/** Sampled every few ms: the most managers that ever claimed to lead at one moment. */
let maxLeaders = 0;
let sampler: ReturnType<typeof setInterval> | undefined;

beforeAll(async () => {
  cp = await startControlPlane();
  audit = auditReplicaSets(cp.transport);
  await audit.ready();
  sampler = setInterval(() => {
    maxLeaders = Math.max(maxLeaders, managers.filter(({ m }) => m.isLeading()).length);
  }, 5);
});

afterAll(async () => {
  clearInterval(sampler);
  for (const { m, proxy } of managers) {
    proxy.unblock();
    await m.stop();
    await proxy.close();
  }
  await audit?.stop();
  await cp?.stop();
});

/** A controller-manager in this process, reaching the apiserver through its own proxy. */
async function startManager(identity: string): Promise<{ m: ControllerManager; proxy: CuttableProxy }> {
  const proxy = await startCuttableProxy(cp.server.url);
  const m = createControllerManager({
    transport: createApiTransport(proxy.url, cp.pki.adminCredentials),
    log: quietLog(),
    options: { identity, controllers: ["replicaset"], ...TIMING },
  });
  await m.start();
  const entry = { m, proxy };
  managers.push(entry);
  return entry;
}

const rss = () => cp.client<ReplicaSet>("ReplicaSet");
const pods = () => cp.client<Pod>("Pod");

async function owned(name: string): Promise<Pod[]> {
  const rs = await rss().get("default", name);
  return (await pods().list("default")).items.filter((p) => isPodActive(p) && p.metadata?.ownerReferences.some((r) => r.controller && r.uid === rs.metadata?.uid));
}

const ownedCount = (name: string, n: number, timeoutMs = 15_000) =>
  waitFor(async () => ((await owned(name)).length === n ? owned(name) : undefined), `${n} pods of ${name}`, timeoutMs);

async function scale(name: string, replicas: number): Promise<void> {
  const cur = await rss().get("default", name);
  cur.spec!.replicas = replicas;
  cur.metadata!.resourceVersion = "";
  await rss().update(cur);
}

const leaders = () => managers.filter(({ m }) => m.isLeading()).map(({ m }) => m.identity);

describe("controller-manager leader election", () => {
  let a: { m: ControllerManager; proxy: CuttableProxy };
  let b: { m: ControllerManager; proxy: CuttableProxy };
  let c: { m: ControllerManager; proxy: CuttableProxy };

  it("runs the controllers in exactly one of two managers", async () => {
    a = await startManager("cm-a");
    await waitFor(() => a.m.isRunning(), "cm-a running");
    b = await startManager("cm-b");
    await rss().create(replicaSet("ha", 3));
    await ownedCount("ha", 3);
    await sleep(TIMING.leaseDurationMs * 1.5);
    expect(leaders()).toEqual(["cm-a"]);
    expect(b.m.isRunning()).toBe(false);
    const lease = await cp.client<Lease>("Lease").get("skiff-system", "skiff-controller-manager");
    expect(lease.spec?.holderIdentity).toBe("cm-a");
  });

  it("hands over within the lease duration when the leader stops, with work under way", async () => {
    await scale("ha", 6); // the leader is creating these as it is told to stop
    const t0 = performance.now();
    await a.m.stop();
    await waitFor(() => b.m.isRunning(), "cm-b to take over", TIMING.leaseDurationMs);
    expect(performance.now() - t0).toBeLessThan(TIMING.leaseDurationMs);
    await ownedCount("ha", 6);
    // A deleted pod is replaced once, by the new leader.
    const [victim] = await owned("ha");
    await pods().delete("default", victim.metadata!.name);
    await waitFor(async () => {
      const ps = await owned("ha");
      return ps.length === 6 && !ps.some((p) => p.metadata!.name === victim.metadata!.name);
    }, "the replacement");
  });

  it("a leader cut off from the apiserver stops; a standby takes over within the lease duration", async () => {
    c = await startManager("cm-c");
    await sleep(TIMING.retryPeriodMs * 4);
    expect(leaders()).toEqual(["cm-b"]);
    b.proxy.block(); // cm-b can no longer renew, nor write anything
    const t0 = performance.now();
    await waitFor(() => !b.m.isLeading(), "cm-b to step down", TIMING.renewDeadlineMs + 500);
    expect(c.m.isLeading()).toBe(false); // not before the lease has run out
    await waitFor(() => c.m.isRunning(), "cm-c to take over", TIMING.leaseDurationMs + 2000);
    expect(performance.now() - t0).toBeLessThan(TIMING.leaseDurationMs + 2000);
    await scale("ha", 4);
    await ownedCount("ha", 4);
    await scale("ha", 5);
    await ownedCount("ha", 5);
    // cm-b comes back: it stands by, it does not write.
    b.proxy.unblock();
    await sleep(TIMING.leaseDurationMs * 1.5);
    expect(leaders()).toEqual(["cm-c"]);
    const lease = await cp.client<Lease>("Lease").get("skiff-system", "skiff-controller-manager");
    expect(lease.spec?.holderIdentity).toBe("cm-c");
    expect(lease.spec?.leaseTransitions).toBe(2); // a → b → c
  });

  it("never had two leaders, a ReplicaSet above its replicas, or a replica created twice", async () => {
    await sleep(300);
    expect(maxLeaders).toBe(1);
    const result = audit.check();
    expect(result.violations).toEqual([]);
    // 3, +3 (scale to 6), +1 (replacement), -2 (scale to 4), +1 (scale to 5).
    expect(result.creates.get("ha")).toBe(8);
    expect(result.maxActive.get("ha")).toBe(6);
  });
});

describe("controller-manager pieces", () => {
  it("selects controllers like kube-controller-manager's --controllers", () => {
    const known = ["replicaset", "deployment", "gc"];
    expect(selectControllers(["*"], known)).toEqual(known);
    expect(selectControllers(["*", "-gc"], known)).toEqual(["replicaset", "deployment"]);
    expect(selectControllers(["gc", "replicaset"], known)).toEqual(["replicaset", "gc"]);
    expect(selectControllers([""], known)).toEqual([]);
    expect(() => selectControllers(["nope"], known)).toThrow(/unknown controller "nope"/);
  });

  it("takes true|false flags like Kubernetes' daemons (--leader-elect=false)", () => {
    expect(parseBool("leader-elect", "false")).toBe(false);
    expect(parseBool("leader-elect", "True")).toBe(true);
    expect(parseBool("leader-elect", "")).toBe(true);
    expect(() => parseBool("leader-elect", "no")).toThrow(/--leader-elect must be true or false, got "no"/);
  });

  it("parses Go-style durations", () => {
    expect(parseDuration("x", "40s")).toBe(40_000);
    expect(parseDuration("x", "5m")).toBe(300_000);
    expect(parseDuration("x", "1h30m")).toBe(5_400_000);
    expect(parseDuration("x", "250ms")).toBe(250);
    expect(parseDuration("x", "1.5s")).toBe(1500);
    expect(parseDuration("x", "0")).toBe(0);
    expect(() => parseDuration("event-ttl", "10")).toThrow(/--event-ttl must be a duration/);
    expect(() => parseDuration("x", "5 m")).toThrow();
  });

  it("a fenced transport refuses calls once its signal aborts, and cuts those in flight", async () => {
    const fence = new AbortController();
    const t = fencedTransport(cp.transport, fence.signal);
    const client = createResourceClient<Pod>(t, "Pod");
    await client.list("default");
    const stream = client.watch("default")[Symbol.asyncIterator]();
    await stream.next();
    const pending = (async () => {
      for (;;) if ((await stream.next()).done) return;
    })();
    fence.abort();
    await expect(pending).rejects.toThrow();
    await expect(client.list("default")).rejects.toThrow(/no longer leading/);
  });
});
