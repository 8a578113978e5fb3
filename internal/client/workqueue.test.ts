import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createWorkQueue } from "./workqueue.ts";
import type { Result, WorkQueue } from "./workqueue.ts";
import {
  createExponentialBackoffLimiter,
  createMaxOfLimiter,
  createTokenBucketLimiter,
} from "./ratelimit.ts";

// Fake timers everywhere: delays and backoffs are asserted to the millisecond, and nothing sleeps.
beforeEach(() => {
  vi.useFakeTimers();
});

// Lets pending promise chains and due timers run without moving the clock.
const flush = () => vi.advanceTimersByTimeAsync(0);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Records every handler call as [key, fake time]. */
function recorder(impl?: (key: string, call: number) => Promise<Result> | Result) {
  const calls: [string, number][] = [];
  const handler = async (key: string): Promise<Result> => {
    calls.push([key, Date.now()]);
    return impl?.(key, calls.length);
  };
  const keys = () => calls.map(([k]) => k);
  return { calls, handler, keys };
}

let queues: WorkQueue[] = [];
function newQueue(opts: Parameters<typeof createWorkQueue>[0] = {}) {
  const q = createWorkQueue(opts);
  queues.push(q);
  return q;
}
afterEach(async () => {
  // Stop every queue and let handlers still sleeping on fake timers finish, so that one failed
  // test cannot leave work behind that wedges the next.
  const stopping = Promise.all(queues.map((q) => q.shutDown()));
  queues = [];
  await vi.runAllTimersAsync();
  await stopping;
  vi.useRealTimers();
});

describe("add", () => {
  it("dedupes a key that is already waiting", async () => {
    const q = newQueue();
    q.add("a");
    q.add("b");
    q.add("a");
    q.add("a");
    expect(q.len()).toBe(2);

    const r = recorder();
    q.run(1, r.handler);
    await q.onIdle();
    expect(r.keys()).toEqual(["a", "b"]);
    expect(q.len()).toBe(0);
  });

  it("dedupes a synchronous burst of adds even while workers are idle", async () => {
    const q = newQueue();
    const r = recorder();
    q.run(4, r.handler);
    for (let i = 0; i < 10; i++) q.add("a");
    await q.onIdle();
    expect(r.keys()).toEqual(["a"]);
  });

  it("processes a key added during its own processing exactly once more, afterwards", async () => {
    const q = newQueue();
    const gate = deferred();
    let running = 0;
    const r = recorder(async (_key, call) => {
      running++;
      if (call === 1) await gate.promise;
      running--;
    });
    q.run(4, r.handler);
    q.add("a");
    await flush();
    expect(r.keys()).toEqual(["a"]);

    // Three adds while the first run is in flight: one more run, not three, and not in parallel.
    q.add("a");
    q.add("a");
    q.add("a");
    await flush();
    expect(r.keys()).toEqual(["a"]);
    expect(q.len()).toBe(0);

    gate.resolve();
    await q.onIdle();
    expect(r.keys()).toEqual(["a", "a"]);
    expect(running).toBe(0);
  });

  it("keeps FIFO order, a re-added processing key going to the back", async () => {
    const q = newQueue();
    const gate = deferred();
    const r = recorder(async (key, call) => {
      if (call === 1) await gate.promise;
    });
    q.run(1, r.handler);
    q.add("a");
    await flush();
    q.add("a");
    q.add("b");
    q.add("c");
    gate.resolve();
    await q.onIdle();
    expect(r.keys()).toEqual(["a", "b", "c", "a"]);
  });
});

describe("workers", () => {
  it("never runs two handlers for one key at once, even with many workers", async () => {
    const q = newQueue();
    const active = new Map<string, number>();
    let maxPerKey = 0;
    let calls = 0;
    q.run(16, async (key) => {
      calls++;
      active.set(key, (active.get(key) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, active.get(key)!);
      await sleep(7);
      active.set(key, active.get(key)! - 1);
    });
    // Hammer two keys every millisecond for 100 ms.
    for (let t = 0; t < 100; t++) {
      q.add("x");
      q.add("y");
      await vi.advanceTimersByTimeAsync(1);
    }
    await vi.advanceTimersByTimeAsync(100);
    await q.onIdle();
    expect(maxPerKey).toBe(1);
    // Each key runs back to back: about 100 ms / 7 ms each, plus the final dirty run.
    expect(calls).toBeGreaterThanOrEqual(2 * 14);
    expect(calls).toBeLessThanOrEqual(2 * 16);
  });

  it("processes different keys in parallel, up to the number of workers", async () => {
    const q = newQueue();
    let running = 0;
    let maxRunning = 0;
    const r = recorder(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(100);
      running--;
    });
    q.run(3, r.handler);
    for (let i = 0; i < 10; i++) q.add(`k${i}`);
    await flush();
    expect(running).toBe(3);
    expect(q.len()).toBe(7);

    // 10 keys, 3 at a time, 100 ms each: four rounds.
    await vi.advanceTimersByTimeAsync(399);
    expect(r.calls.length).toBe(10);
    await vi.advanceTimersByTimeAsync(1);
    await q.onIdle();
    expect(maxRunning).toBe(3);
    expect(new Set(r.keys()).size).toBe(10);
  });

  it("rejects a second run and a bad worker count", () => {
    const q = newQueue();
    expect(() => q.run(0, () => {})).toThrow(RangeError);
    expect(() => q.run(1.5, () => {})).toThrow(RangeError);
    q.run(1, () => {});
    expect(() => q.run(1, () => {})).toThrow(/twice/);
  });
});

describe("addAfter", () => {
  it("does not fire before its delay", async () => {
    const q = newQueue();
    const r = recorder();
    q.run(1, r.handler);
    q.addAfter("a", 100);
    expect(q.len()).toBe(0);
    await vi.advanceTimersByTimeAsync(99);
    expect(r.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.keys()).toEqual(["a"]);
  });

  it("lets the earlier of two delays win, and fires once", async () => {
    const q = newQueue();
    const r = recorder();
    q.run(1, r.handler);
    const t0 = Date.now();
    q.addAfter("a", 1000);
    q.addAfter("a", 100);
    q.addAfter("b", 100);
    q.addAfter("b", 1000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.calls).toEqual([
      ["a", t0 + 100],
      ["b", t0 + 100],
    ]);
  });

  it("adds at once for a zero or negative delay", async () => {
    const q = newQueue();
    q.addAfter("a", 0);
    q.addAfter("b", -5);
    expect(q.len()).toBe(2);
  });

  it("chains timers for delays beyond setTimeout's limit", async () => {
    const q = newQueue();
    const r = recorder();
    q.run(1, r.handler);
    const day = 24 * 3600 * 1000;
    q.addAfter("a", 30 * day);
    await vi.advanceTimersByTimeAsync(30 * day - 1);
    expect(r.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.keys()).toEqual(["a"]);
  });
});

describe("retries", () => {
  it("retries a throwing handler with growing backoff, and a success forgets it", async () => {
    const onError = vi.fn();
    const q = newQueue({ baseDelayMs: 10, maxDelayMs: 1000, onError });
    const requeues: number[] = [];
    const r = recorder((key, call) => {
      requeues.push(q.numRequeues(key));
      if (call <= 4) throw new Error(`boom ${call}`);
    });
    q.run(1, r.handler);
    const t0 = Date.now();
    q.add("a");
    await vi.advanceTimersByTimeAsync(1000);
    await q.onIdle();

    const gaps = r.calls.map(([, t]) => t - t0);
    expect(gaps).toEqual([0, 10, 30, 70, 150]);
    expect(requeues).toEqual([0, 1, 2, 3, 4]);
    expect(onError).toHaveBeenCalledTimes(4);
    expect(onError.mock.calls[0][0]).toBe("a");
    expect(onError.mock.calls[0][1]).toBeInstanceOf(Error);
    expect(q.numRequeues("a")).toBe(0);
  });

  it("treats a synchronous throw like a rejected promise", async () => {
    const q = newQueue({ baseDelayMs: 10 });
    let calls = 0;
    q.run(1, () => {
      if (++calls === 1) throw new Error("sync");
    });
    q.add("a");
    await vi.advanceTimersByTimeAsync(10);
    await q.onIdle();
    expect(calls).toBe(2);
  });

  it("caps the backoff at maxDelayMs", async () => {
    const q = newQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    const r = recorder(() => ({ requeue: true }));
    q.run(1, r.handler);
    const t0 = Date.now();
    q.add("a");
    await vi.advanceTimersByTimeAsync(300);
    const times = r.calls.map(([, t]) => t - t0);
    // 0, +10, +20, +40, then +50 each time.
    expect(times.slice(0, 7)).toEqual([0, 10, 30, 70, 120, 170, 220]);
  });

  it("resets the backoff on forget", async () => {
    const q = newQueue({ baseDelayMs: 10 });
    const r = recorder();
    q.run(1, r.handler);
    const t0 = Date.now();
    q.addRateLimited("a"); // +10
    q.addRateLimited("a"); // +20, the earlier timer wins
    q.addRateLimited("a"); // +40
    expect(q.numRequeues("a")).toBe(3);
    q.forget("a");
    expect(q.numRequeues("a")).toBe(0);
    await vi.advanceTimersByTimeAsync(10);
    await q.onIdle();

    q.addRateLimited("a"); // back to the base delay
    await vi.advanceTimersByTimeAsync(9);
    expect(r.calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.calls.map(([, t]) => t - t0)).toEqual([10, 20]);
  });

  it("requeue: true retries with backoff and keeps counting", async () => {
    const q = newQueue({ baseDelayMs: 10 });
    const r = recorder((_key, call) => (call <= 2 ? { requeue: true } : undefined));
    q.run(1, r.handler);
    const t0 = Date.now();
    q.add("a");
    await vi.advanceTimersByTimeAsync(29);
    expect(r.calls.length).toBe(2);
    expect(q.numRequeues("a")).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    await q.onIdle();
    expect(r.calls.map(([, t]) => t - t0)).toEqual([0, 10, 30]);
    expect(q.numRequeues("a")).toBe(0);
  });

  it("spreads retries of many keys by the overall token bucket", async () => {
    const q = newQueue({ baseDelayMs: 0, qps: 10, burst: 2 });
    const r = recorder();
    q.run(10, r.handler);
    const t0 = Date.now();
    for (const k of ["a", "b", "c", "d", "e"]) q.addRateLimited(k);
    await vi.advanceTimersByTimeAsync(1000);
    // Two from the burst, then one every 100 ms.
    expect(r.calls.map(([k, t]) => [k, t - t0])).toEqual([
      ["a", 0],
      ["b", 0],
      ["c", 100],
      ["d", 200],
      ["e", 300],
    ]);
  });
});

describe("requeueAfterMs", () => {
  it("checks again after the delay and resets the backoff", async () => {
    const q = newQueue({ baseDelayMs: 10 });
    const r = recorder((_key, call) => {
      if (call <= 2) throw new Error("fail");
      if (call === 3) return { requeueAfterMs: 500 };
    });
    q.run(1, r.handler);
    const t0 = Date.now();
    q.add("a");
    await vi.advanceTimersByTimeAsync(30);
    expect(r.calls.length).toBe(3);
    expect(q.numRequeues("a")).toBe(0);

    await vi.advanceTimersByTimeAsync(499);
    expect(r.calls.length).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    await q.onIdle();
    expect(r.calls.map(([, t]) => t - t0)).toEqual([0, 10, 30, 530]);
  });

  it("wins over requeue: true, and 0 means again right away", async () => {
    const q = newQueue({ baseDelayMs: 1000 });
    const r = recorder((_key, call) => (call === 1 ? { requeue: true, requeueAfterMs: 0 } : undefined));
    q.run(1, r.handler);
    q.add("a");
    await flush();
    await q.onIdle();
    expect(r.keys()).toEqual(["a", "a"]);
  });
});

describe("shutDown", () => {
  it("waits for in-flight handlers, starts nothing new, and drops later adds", async () => {
    const q = newQueue({ baseDelayMs: 10 });
    const gate = deferred();
    const r = recorder(async (key) => {
      if (key === "slow") await gate.promise;
      return { requeueAfterMs: 10 }; // dropped: the queue is shutting down by then
    });
    q.run(1, r.handler);
    q.add("slow");
    q.add("waiting");
    q.addAfter("later", 50);
    q.addRateLimited("retry");
    await flush();
    expect(r.keys()).toEqual(["slow"]);

    let done = false;
    const stopped = q.shutDown().then(() => (done = true));
    expect(q.len()).toBe(0);
    expect(vi.getTimerCount()).toBe(0); // delayed timers are cleared at once
    q.add("new");
    q.addAfter("new", 1);
    q.addRateLimited("new");
    expect(q.len()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);

    await vi.advanceTimersByTimeAsync(100);
    expect(done).toBe(false);
    gate.resolve();
    await stopped;
    await q.onIdle();
    await vi.advanceTimersByTimeAsync(100);
    expect(r.keys()).toEqual(["slow"]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("resolves at once when nothing is in flight, and can be called again", async () => {
    const q = newQueue();
    q.addAfter("a", 1000);
    expect(vi.getTimerCount()).toBe(1);
    await q.shutDown();
    await q.shutDown();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("onIdle", () => {
  it("waits for waiting, delayed and in-flight work", async () => {
    const q = newQueue();
    let idle = false;
    await q.onIdle(); // nothing to do yet
    q.run(2, () => sleep(20));
    q.add("a");
    q.addAfter("b", 100);
    void q.onIdle().then(() => (idle = true));
    await vi.advanceTimersByTimeAsync(110);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(10);
    expect(idle).toBe(true);
  });
});

describe("metrics", () => {
  it("reports adds, depth, retries and durations under the queue name", async () => {
    const seen: string[] = [];
    const depths: number[] = [];
    const q = newQueue({
      name: "pods",
      baseDelayMs: 10,
      metrics: {
        added: (n) => seen.push(`added:${n}`),
        depth: (_n, d) => depths.push(d),
        retried: (n) => seen.push(`retried:${n}`),
        queueLatencyMs: (n, ms) => seen.push(`latency:${n}:${ms}`),
        workDurationMs: (n, ms) => seen.push(`work:${n}:${ms}`),
      },
    });
    q.add("a");
    q.add("a");
    q.add("b");
    await vi.advanceTimersByTimeAsync(5);
    let calls = 0;
    q.run(1, async () => {
      await sleep(3);
      if (++calls === 1) return { requeue: true };
    });
    await vi.advanceTimersByTimeAsync(100);
    await q.onIdle();
    expect(seen).toEqual([
      "added:pods",
      "added:pods",
      "latency:pods:5",
      "retried:pods",
      "work:pods:3",
      "latency:pods:8",
      "work:pods:3",
      "added:pods", // the retry of a comes back after 10 ms
      "latency:pods:0",
      "work:pods:3",
    ]);
    expect(depths.slice(0, 2)).toEqual([1, 2]);
    expect(depths.at(-1)).toBe(0);
  });

  it("survives hooks that throw", async () => {
    const boom = () => {
      throw new Error("hook");
    };
    const q = newQueue({
      baseDelayMs: 1,
      onError: boom,
      metrics: { added: boom, depth: boom, retried: boom, queueLatencyMs: boom, workDurationMs: boom },
    });
    let calls = 0;
    q.run(1, () => {
      if (++calls === 1) throw new Error("fail");
    });
    q.add("a");
    await vi.advanceTimersByTimeAsync(10);
    await q.onIdle();
    expect(calls).toBe(2);
  });
});

describe("rate limiters", () => {
  it("exponential backoff doubles per key, caps, and forgets", () => {
    const l = createExponentialBackoffLimiter({ baseDelayMs: 5, maxDelayMs: 40 });
    expect([l.when("a"), l.when("a"), l.when("b"), l.when("a"), l.when("a"), l.when("a")]).toEqual([
      5, 10, 5, 20, 40, 40,
    ]);
    expect(l.numRequeues("a")).toBe(5);
    l.forget("a");
    expect(l.when("a")).toBe(5);
    // Thousands of failures must not overflow to NaN or Infinity.
    for (let i = 0; i < 5000; i++) l.when("c");
    expect(l.when("c")).toBe(40);
  });

  it("defaults to 5 ms .. 1000 s", () => {
    const l = createExponentialBackoffLimiter();
    expect(l.when("a")).toBe(5);
    for (let i = 0; i < 40; i++) l.when("a");
    expect(l.when("a")).toBe(1_000_000);
  });

  it("token bucket allows a burst, then spaces calls at 1/qps, and refills", () => {
    let t = 0;
    const l = createTokenBucketLimiter({ qps: 2, burst: 3, now: () => t });
    expect([l.when("a"), l.when("b"), l.when("c"), l.when("d"), l.when("e")]).toEqual([0, 0, 0, 500, 1000]);
    t = 10_000; // long idle: refills to the burst, not beyond
    expect([l.when("a"), l.when("a"), l.when("a"), l.when("a")]).toEqual([0, 0, 0, 500]);
    expect(l.numRequeues("a")).toBe(0);
  });

  it("token bucket with infinite qps never waits; bad settings are rejected", () => {
    const l = createTokenBucketLimiter({ qps: Infinity, burst: 1 });
    for (let i = 0; i < 100; i++) expect(l.when("a")).toBe(0);
    expect(() => createTokenBucketLimiter({ qps: 0 })).toThrow(RangeError);
    expect(() => createTokenBucketLimiter({ burst: 0 })).toThrow(RangeError);
    expect(() => createExponentialBackoffLimiter({ baseDelayMs: 10, maxDelayMs: 5 })).toThrow(RangeError);
  });

  it("max-of takes the longest delay and the largest count", () => {
    const t = 0;
    const l = createMaxOfLimiter(
      createExponentialBackoffLimiter({ baseDelayMs: 1 }),
      createTokenBucketLimiter({ qps: 1, burst: 1, now: () => t }),
    );
    expect([l.when("a"), l.when("a"), l.when("a")]).toEqual([1, 1000, 2000]);
    expect(l.numRequeues("a")).toBe(3);
    l.forget("a");
    expect(l.numRequeues("a")).toBe(0);
  });
});

describe("stress", () => {
  // Deterministic PRNG so a failure replays exactly.
  function mulberry32(seed: number) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
  }

  it.each([1, 2, 3])("loses no key under random adds from many sources (seed %i)", async (seed) => {
    const rand = mulberry32(seed);
    const WORKERS = 4;
    const keys = Array.from({ length: 12 }, (_, i) => `ns/pod-${i}`);
    const q = newQueue({ baseDelayMs: 1, maxDelayMs: 20, qps: 1000, burst: 50 });

    let seq = 0;
    // Seq of the latest add of any kind: some handler must start after it. (When a delay is
    // superseded by an earlier one, that earlier run is the one that honours it.)
    const lastAdd = new Map<string, number>();
    const lastStart = new Map<string, number>();
    const active = new Map<string, number>();
    let running = 0;
    let maxRunning = 0;
    let violations = 0;

    q.run(WORKERS, async (key) => {
      lastStart.set(key, ++seq);
      if ((active.get(key) ?? 0) > 0) violations++;
      active.set(key, 1);
      running++;
      maxRunning = Math.max(maxRunning, running);
      // Add from inside handlers too: controllers enqueue related keys while reconciling.
      if (rand() < 0.2) q.add(keys[Math.floor(rand() * keys.length)]);
      await sleep(Math.floor(rand() * 5));
      active.set(key, 0);
      running--;
      const roll = rand();
      if (roll < 0.1) throw new Error("transient");
      if (roll < 0.15) return { requeue: true };
      if (roll < 0.2) return { requeueAfterMs: Math.floor(rand() * 10) };
    });

    // Several independent sources (informer handlers, timers, other controllers) each adding on
    // their own schedule; the loop is bounded so the test always ends.
    const SOURCES = 6;
    const ADDS_PER_SOURCE = 300;
    const sources = Array.from({ length: SOURCES }, async () => {
      for (let i = 0; i < ADDS_PER_SOURCE; i++) {
        const key = keys[Math.floor(rand() * keys.length)];
        const kind = rand();
        if (kind < 0.7) {
          q.add(key);
          lastAdd.set(key, ++seq);
        } else if (kind < 0.9) {
          const delay = Math.floor(rand() * 15);
          q.addAfter(key, delay);
          lastAdd.set(key, ++seq);
        } else {
          q.addRateLimited(key);
          lastAdd.set(key, ++seq); // the retry must happen some time after this
        }
        await sleep(Math.floor(rand() * 3));
      }
    });

    let finished = false;
    void Promise.all(sources)
      .then(() => q.onIdle())
      .then(() => (finished = true));
    for (let i = 0; i < 10_000 && !finished; i++) await vi.advanceTimersByTimeAsync(5);

    expect(finished).toBe(true);
    expect(violations).toBe(0);
    expect(maxRunning).toBeLessThanOrEqual(WORKERS);
    expect(maxRunning).toBeGreaterThan(1);
    expect(q.len()).toBe(0);
    for (const [key, s] of lastAdd) {
      expect(lastStart.get(key), key).toBeGreaterThan(s);
    }
  });
});
