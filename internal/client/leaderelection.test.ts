import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { startCuttableProxy, type CuttableProxy } from "../../test/client/tcp-proxy.ts";
import { runLeaderElection, type LeaderElectionOptions } from "./leaderelection.ts";
import { createResourceClient } from "./resource-client.ts";
import { createApiTransport } from "./transport.ts";
import { adminCredentials, testPki } from "../pki/testing.ts";

// Short times so the tests run in seconds; the ratios are the defaults' (15 / 10 / 2).
const LEASE_MS = 2000; // the Lease records whole seconds
const RENEW_DEADLINE_MS = 1300;
const RETRY_MS = 250;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function server(): Promise<ApiServer> {
  const s = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  cleanups.push(() => s.close());
  return s;
}

async function proxy(url: string): Promise<CuttableProxy> {
  const p = await startCuttableProxy(url);
  cleanups.push(() => p.close());
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Every candidate of a test reports here: who leads now, and a timeline. A second leader while one
 * still leads fails the test (the term signal aborts synchronously when leadership ends, so the set
 * is exactly the set of candidates whose work may still run).
 */
function referee() {
  const leading = new Set<string>();
  const timeline: { t: number; who: string; what: "start" | "stop" }[] = [];
  const overlaps: string[] = [];
  return {
    leading,
    timeline,
    overlaps,
    started(who: string, signal: AbortSignal) {
      if (leading.size > 0) overlaps.push(`${who} started while ${[...leading].join(",")} led`);
      leading.add(who);
      timeline.push({ t: performance.now(), who, what: "start" });
      signal.addEventListener("abort", () => {
        leading.delete(who);
        timeline.push({ t: performance.now(), who, what: "stop" });
      });
    },
  };
}

type Ref = ReturnType<typeof referee>;

function candidate(url: string, identity: string, ref: Ref, extra: Partial<LeaderElectionOptions> = {}) {
  const abort = new AbortController();
  const state = { leading: false, stoppedCalls: 0, done: undefined as unknown as Promise<void> };
  state.done = runLeaderElection(
    {
      transport: createApiTransport(url, adminCredentials()),
      leaseName: "test-lock",
      identity,
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
      retryPeriodMs: RETRY_MS,
      onStartedLeading: (signal) => {
        state.leading = true;
        ref.started(identity, signal);
        signal.addEventListener("abort", () => (state.leading = false));
      },
      onStoppedLeading: () => state.stoppedCalls++,
      ...extra,
    },
    abort.signal,
  );
  const stop = async () => {
    abort.abort();
    await state.done;
  };
  cleanups.push(stop);
  return { state, stop, identity };
}

async function readLease(url: string): Promise<Lease> {
  return createResourceClient<Lease>(createApiTransport(url, adminCredentials()), "Lease").get("skiff-system", "test-lock");
}

describe("runLeaderElection", () => {
  it("elects exactly one of two candidates and records it in the Lease", async () => {
    const s = await server();
    const ref = referee();
    const a = candidate(s.url, "a", ref);
    const b = candidate(s.url, "b", ref);
    await until(() => a.state.leading || b.state.leading, 5000, "a leader");
    await sleep(LEASE_MS * 2); // renewals keep it; the other never takes over
    expect([a.state.leading, b.state.leading].filter(Boolean)).toHaveLength(1);
    const leader = a.state.leading ? "a" : "b";
    const lease = await readLease(s.url);
    expect(lease.spec?.holderIdentity).toBe(leader);
    expect(lease.spec?.leaseDurationSeconds).toBe(2);
    expect(lease.spec?.leaseTransitions).toBe(0);
    expect(ref.timeline.filter((e) => e.what === "start")).toHaveLength(1);
    expect(ref.overlaps).toEqual([]);
  });

  it("hands over fast when the leader shuts down (the lease is released)", async () => {
    const s = await server();
    const ref = referee();
    // A long lease, so that "fast" (a few retry periods) and "waited the lease out" stay far
    // apart even on a loaded machine.
    const long = { leaseDurationMs: 3 * LEASE_MS, renewDeadlineMs: 2 * LEASE_MS };
    const a = candidate(s.url, "a", ref, long);
    await until(() => a.state.leading, 5000, "a to lead");
    const b = candidate(s.url, "b", ref, long);
    await sleep(RETRY_MS * 3);
    expect(b.state.leading).toBe(false);
    const t0 = performance.now();
    await a.stop();
    expect(a.state.stoppedCalls).toBe(1);
    await until(() => b.state.leading, long.leaseDurationMs, "b to take over");
    // Released: no need to wait out the lease duration.
    expect(performance.now() - t0).toBeLessThan(long.leaseDurationMs);
    const lease = await readLease(s.url);
    expect(lease.spec?.holderIdentity).toBe("b");
    expect(lease.spec?.leaseTransitions).toBe(1);
    expect(ref.overlaps).toEqual([]);
  });

  it("hands over fast on shutdown even when a renewal was written but its answer was cut off", async () => {
    const s = await server();
    const ref = referee();
    const long = { leaseDurationMs: 3 * LEASE_MS, renewDeadlineMs: 2 * LEASE_MS };
    // a's renewals reach the server and are written, but once `late.on`, their answers arrive only
    // after a has begun shutting down (the shutdown aborts the call): a's last known version is stale.
    const late = { on: false, held: 0 };
    const inner = createApiTransport(s.url, adminCredentials());
    const transport: Transport = {
      async unary(method, signal, timeoutMs, header, input, values) {
        const res = await inner.unary(method, undefined, timeoutMs, header, input, values);
        if (late.on && method.name === "Update" && signal) {
          late.held++;
          await new Promise((r) => (signal.aborted ? r(undefined) : signal.addEventListener("abort", r, { once: true })));
          throw new ConnectError("answer lost", Code.Canceled);
        }
        return res;
      },
      stream: (...args) => inner.stream(...args),
    };
    const a = candidate(s.url, "a", ref, { ...long, transport });
    await until(() => a.state.leading, 5000, "a to lead");
    const b = candidate(s.url, "b", ref, long);
    late.on = true;
    await until(() => late.held > 0, 5000, "a renewal whose answer is held back");
    const t0 = performance.now();
    await a.stop();
    await until(() => b.state.leading, long.leaseDurationMs, "b to take over");
    expect(performance.now() - t0).toBeLessThan(long.leaseDurationMs);
    expect((await readLease(s.url)).spec?.holderIdentity).toBe("b");
    expect(ref.overlaps).toEqual([]);
  });

  it("hands over within about a lease duration when the leader vanishes without releasing", async () => {
    const s = await server();
    const ref = referee();
    const a = candidate(s.url, "a", ref, { releaseOnCancel: false });
    await until(() => a.state.leading, 5000, "a to lead");
    const b = candidate(s.url, "b", ref);
    await sleep(RETRY_MS * 3);
    const t0 = performance.now();
    await a.stop();
    await until(() => b.state.leading, LEASE_MS + 4 * RETRY_MS, "b to take over");
    const took = performance.now() - t0;
    // Not before the lease ran out as b saw it (b saw a's last renewal at most one period before t0).
    expect(took).toBeGreaterThan(LEASE_MS - 2 * RETRY_MS);
    expect(ref.overlaps).toEqual([]);
  });

  it("a leader that cannot renew steps down before another candidate can acquire", async () => {
    const s = await server();
    const ref = referee();
    const pa = await proxy(s.url);
    const a = candidate(pa.url, "a", ref);
    await until(() => a.state.leading, 5000, "a to lead");
    const b = candidate(s.url, "b", ref);
    await sleep(RETRY_MS * 3);
    pa.block(); // a can no longer reach the apiserver; b can
    const t0 = performance.now();
    await until(() => b.state.leading, LEASE_MS + 6 * RETRY_MS, "b to take over");
    const stopA = ref.timeline.find((e) => e.who === "a" && e.what === "stop");
    const startB = ref.timeline.find((e) => e.who === "b" && e.what === "start");
    expect(stopA).toBeDefined();
    expect(stopA!.t - t0).toBeLessThanOrEqual(RENEW_DEADLINE_MS + 100);
    expect(stopA!.t).toBeLessThan(startB!.t);
    // a still believes nothing else; it competes again, and cannot win while b renews.
    expect(a.state.stoppedCalls).toBe(1);
    pa.unblock();
    await sleep(LEASE_MS * 1.5);
    expect(a.state.leading).toBe(false);
    expect(b.state.leading).toBe(true);
    expect(ref.overlaps).toEqual([]);
  });

  it("keeps renewing while the work winds down after shutdown, then releases", async () => {
    // A longer lease and renew deadline than the other cases: the drain outlasts the lease, and a
    // loaded machine stalling this process (apiserver and both candidates) for more than the
    // default 1.3 s deadline made a step down that is right for a leader that cannot renew.
    const timing = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 };
    const s = await server();
    const ref = referee();
    let lostAborted = false;
    let drained = false;
    const a = candidate(s.url, "a", ref, {
      ...timing,
      onStartedLeading: async (signal, lost) => {
        ref.started("a", signal);
        lost.addEventListener("abort", () => (lostAborted = true));
        await new Promise((r) => signal.addEventListener("abort", r));
        await sleep(timing.leaseDurationMs * 1.5); // longer than the lease: only renewals keep it
        drained = true;
      },
    });
    await until(() => ref.leading.has("a"), 5000, "a to lead");
    const b = candidate(s.url, "b", ref, timing);
    const stopping = a.stop();
    await until(() => b.state.leading || drained, timing.leaseDurationMs * 3, "a to drain");
    expect(b.state.leading).toBe(false); // b could not take over while a drained
    expect(lostAborted).toBe(false);
    await stopping;
    await until(() => b.state.leading, timing.leaseDurationMs, "b to take over after the release");
  });

  it("the lease is created if absent and a leader steps down when it is taken from it", async () => {
    const s = await server();
    const ref = referee();
    const a = candidate(s.url, "a", ref);
    await until(() => a.state.leading, 5000, "a to lead");
    // Someone overwrites the lease (an operator, a broken peer): a must notice and step down.
    const leases = createResourceClient<Lease>(createApiTransport(s.url, adminCredentials()), "Lease");
    const cur = await leases.get("skiff-system", "test-lock");
    cur.spec!.holderIdentity = "intruder";
    await leases.update(cur);
    await until(() => !a.state.leading, RENEW_DEADLINE_MS + 2 * RETRY_MS, "a to step down");
    expect(ref.overlaps).toEqual([]);
  });

  it("never has two leaders while candidates come, go and lose their connection", async () => {
    const s = await server();
    const ref = referee();
    const proxies = await Promise.all([0, 1, 2].map(() => proxy(s.url)));
    const cands = proxies.map((p, i) => ({ p, c: candidate(p.url, `c${i}`, ref) }));
    const end = performance.now() + 8000;
    let round = 0;
    while (performance.now() < end) {
      round++;
      const i = round % 3;
      const { p } = cands[i];
      // Alternately cut one candidate off for a while, and let it back.
      if (round % 2 === 1) p.block();
      else p.unblock();
      await sleep(300 + Math.random() * 700);
    }
    for (const { p } of cands) p.unblock();
    await until(() => ref.leading.size === 1, LEASE_MS * 3, "one leader at the end");
    expect(ref.overlaps).toEqual([]);
    expect(ref.timeline.filter((e) => e.what === "start").length).toBeGreaterThan(1);
  }, 30_000);

  it("rejects timing that cannot be safe", async () => {
    const bad = (o: Partial<LeaderElectionOptions>) =>
      runLeaderElection(
        { transport: createApiTransport("https://127.0.0.1:1", adminCredentials()), leaseName: "x", identity: "i", onStartedLeading() {}, onStoppedLeading() {}, ...o },
        new AbortController().signal,
      );
    await expect(bad({ leaseDurationMs: 1000, renewDeadlineMs: 1000 })).rejects.toThrow(/leaseDuration/);
    await expect(bad({ renewDeadlineMs: 1000, retryPeriodMs: 900 })).rejects.toThrow(/renewDeadline/);
    await expect(bad({ identity: "" })).rejects.toThrow(/identity/);
  });
});
