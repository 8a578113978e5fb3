import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makePod } from "./core/testing.ts";
import { createSchedulingQueue, type SchedulingQueue } from "./queue.ts";

let q: SchedulingQueue;
const make = (opts = {}) => (q = createSchedulingQueue({ initialBackoffMs: 1000, maxBackoffMs: 10_000, maxUnschedulableMs: 60_000, now: () => Date.now(), ...opts }));
const pod = (name: string, priority = 0) => {
  const p = makePod(name, { uid: `uid-${name}` });
  p.spec!.priority = priority;
  return p;
};
/** Pops what is active right now, without waiting. */
async function drain(): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const ac = new AbortController();
    const next = q.pop(ac.signal);
    await Promise.resolve();
    ac.abort();
    const e = await next;
    if (!e) return out;
    out.push(e.key);
  }
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => {
  q?.close();
  vi.useRealTimers();
});

describe("scheduling queue", () => {
  it("pops by priority, then in arrival order, once per pod", async () => {
    make();
    q.add(pod("a"));
    q.add(pod("b", 10));
    q.add(pod("c"));
    q.add(pod("a"));
    expect(await drain()).toEqual(["default/b", "default/a", "default/c"]);
  });

  it("wakes a waiting pop when a pod arrives, and returns undefined once closed", async () => {
    make();
    const waiting = q.pop();
    q.add(pod("a"));
    expect((await waiting)?.key).toBe("default/a");
    const more = q.pop();
    q.close();
    expect(await more).toBeUndefined();
  });

  it("parks an unschedulable pod until something changes, then honours its backoff", async () => {
    make();
    q.add(pod("a"));
    const [e] = [await q.pop()];
    q.failed(e!, "unschedulable");
    expect(q.counts()).toMatchObject({ unschedulable: 1, active: 0 });
    vi.advanceTimersByTime(5000); // backoff over, but no event: stays parked
    expect(await drain()).toEqual([]);
    q.moveAll();
    expect(await drain()).toEqual(["default/a"]);
  });

  it("a moved pod still in backoff waits for it in the backoff heap", async () => {
    make();
    q.add(pod("a"));
    const e = (await q.pop())!;
    q.failed(e, "unschedulable");
    q.moveAll();
    expect(q.counts()).toMatchObject({ backoff: 1 });
    vi.advanceTimersByTime(999);
    expect(await drain()).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(await drain()).toEqual(["default/a"]);
  });

  it("doubles the backoff per failed attempt up to the maximum", async () => {
    make();
    q.add(pod("a"));
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const e = (await q.pop())!;
      const start = Date.now();
      q.failed(e, "error");
      while (q.counts().active === 0) vi.advanceTimersByTime(100);
      delays.push(Date.now() - start);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  it("sends a pod that failed while an event arrived to backoff, not to the parking lot", async () => {
    make();
    q.add(pod("a"));
    const e = (await q.pop())!;
    q.moveAll(); // e.g. a node was added while the attempt ran
    q.failed(e, "unschedulable");
    expect(q.counts()).toMatchObject({ unschedulable: 0, backoff: 1 });
  });

  it("moves only the pods a filter picks", async () => {
    make();
    const withAffinity = pod("b");
    withAffinity.spec!.affinity = { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: "x", namespaces: [] }] } } as never;
    q.add(pod("a"));
    q.add(withAffinity);
    const [a, b] = [(await q.pop())!, (await q.pop())!];
    q.failed(a, "unschedulable");
    q.failed(b, "unschedulable");
    vi.advanceTimersByTime(1000);
    q.moveAll((p) => p.podAffinity);
    expect(await drain()).toEqual(["default/b"]);
  });

  it("retries a parked pod after maxUnschedulableMs even without an event", async () => {
    make({ maxUnschedulableMs: 10_000 });
    q.add(pod("a"));
    q.failed((await q.pop())!, "unschedulable");
    vi.advanceTimersByTime(9000);
    expect(await drain()).toEqual([]);
    vi.advanceTimersByTime(6000);
    expect(await drain()).toEqual(["default/a"]);
  });

  it("an update of a parked pod retries it; delete forgets it everywhere", async () => {
    make();
    q.add(pod("a"));
    q.add(pod("b"));
    const [a, b] = [(await q.pop())!, (await q.pop())!];
    q.failed(a, "unschedulable");
    q.failed(b, "error");
    vi.advanceTimersByTime(1000);
    q.update(pod("a"));
    q.delete("uid-b");
    vi.advanceTimersByTime(5000);
    expect(await drain()).toEqual(["default/a"]);
    expect(q.counts()).toEqual({ active: 0, backoff: 0, unschedulable: 0, inflight: 1 });
    q.done("uid-a");
    expect(q.counts().inflight).toBe(0);
  });

  it("ignores failed() for a pod deleted during its attempt", async () => {
    make();
    q.add(pod("a"));
    const e = (await q.pop())!;
    q.delete("uid-a");
    q.failed(e, "unschedulable");
    expect(q.counts()).toEqual({ active: 0, backoff: 0, unschedulable: 0, inflight: 0 });
  });
});
