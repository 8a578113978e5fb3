// Watch half of the conformance suite (see conformance.ts).

import { describe, expect, it, vi } from "vitest";
import { StoreError, type Store, type WatchEvent } from "./store.ts";

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);

export interface WatchProbe {
  batches: WatchEvent[][];
  events(): WatchEvent[];
  error(): unknown;
  ended(): boolean;
  /** Waits until at least n events arrived (or the watch failed/ended). */
  waitFor(n: number, timeoutMs?: number): Promise<WatchEvent[]>;
  /** Waits until the watch ends by itself (error or end). */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Consumes store.watch in the background, recording batches. */
export function startWatch(store: Store, prefix: string, from: number): WatchProbe {
  const ac = new AbortController();
  const batches: WatchEvent[][] = [];
  let error: unknown;
  let ended = false;
  const done = (async () => {
    try {
      for await (const batch of store.watch(prefix, from, ac.signal)) batches.push(batch);
    } catch (err) {
      error = err;
    } finally {
      ended = true;
    }
  })();
  const events = () => batches.flat();
  return {
    batches,
    events,
    error: () => error,
    ended: () => ended,
    async waitFor(n, timeoutMs = 10_000) {
      await vi.waitFor(
        () => {
          if (error) throw error;
          if (events().length < n) throw new Error(`got ${events().length} of ${n} events`);
        },
        { timeout: timeoutMs, interval: 5 },
      );
      return events();
    },
    async settled(timeoutMs = 15_000) {
      await vi.waitFor(
        () => {
          if (!ended) throw new Error("watch still running");
        },
        { timeout: timeoutMs, interval: 10 },
      );
    },
    async stop() {
      ac.abort();
      await done;
    },
  };
}

const brief = (e: WatchEvent) => `${e.type} ${e.key} @${e.modRevision}`;

export function describeWatchConformance(s: () => Store): void {
  describe("watch", () => {
    it("replays exactly the missed events from a revision, then live ones, in order", async () => {
      const r0 = await s().currentRevision();
      const a = await s().create("/w/a", b("1"));
      await s().update("/w/a", b("2"), a.modRevision);
      await s().create("/w/b", b("3"));
      await s().delete("/w/a");
      const w = startWatch(s(), "/w/", r0 + 2); // skips the first create
      try {
        await w.waitFor(3);
        await s().create("/w/c", b("4"));
        await s().delete("/w/b");
        const events = await w.waitFor(5);
        expect(events.map(brief)).toEqual([
          `put /w/a @${r0 + 2}`,
          `put /w/b @${r0 + 3}`,
          `delete /w/a @${r0 + 4}`,
          `put /w/c @${r0 + 5}`,
          `delete /w/b @${r0 + 6}`,
        ]);
        await new Promise((r) => setTimeout(r, 100));
        expect(w.events()).toHaveLength(5); // nothing duplicated
      } finally {
        await w.stop();
      }
    });

    it("without previous values: puts and deletes carry none, everything else is the same", async () => {
      const r0 = await s().currentRevision();
      const ac = new AbortController();
      const events: WatchEvent[] = [];
      const done = (async () => {
        for await (const batch of s().watch("/wp/", r0 + 1, ac.signal, { prevValues: false })) events.push(...batch);
      })().catch(() => undefined);
      try {
        const x = await s().create("/wp/x", b("x1"));
        await s().update("/wp/x", b("x2"), x.modRevision);
        await s().delete("/wp/x");
        await expect.poll(() => events.length, { timeout: 10_000 }).toBe(3);
        expect(events).toEqual([
          { type: "put", key: "/wp/x", value: b("x1"), modRevision: r0 + 1, createRevision: r0 + 1 },
          { type: "put", key: "/wp/x", value: b("x2"), modRevision: r0 + 2, createRevision: r0 + 1 },
          { type: "delete", key: "/wp/x", modRevision: r0 + 3 },
        ]);
      } finally {
        ac.abort();
        await done;
      }
    });

    it("delivers one batch per revision, with values, previous values and create revisions", async () => {
      const r0 = await s().currentRevision();
      const w = startWatch(s(), "/wb/", r0 + 1);
      try {
        const x = await s().create("/wb/x", b("x1"));
        await s().txn([
          { op: "update", key: "/wb/x", value: b("x2"), expectedModRevision: x.modRevision },
          { op: "create", key: "/wb/y", value: b("y1") },
        ]);
        await s().delete("/wb/y");
        await w.waitFor(4);
        expect(w.batches.map((batch) => batch.map(brief))).toEqual([
          [`put /wb/x @${r0 + 1}`],
          [`put /wb/x @${r0 + 2}`, `put /wb/y @${r0 + 2}`],
          [`delete /wb/y @${r0 + 3}`],
        ]);
        expect(w.batches[0][0]).toEqual({ type: "put", key: "/wb/x", value: b("x1"), modRevision: r0 + 1, createRevision: r0 + 1 });
        expect(w.batches[1][0]).toEqual({
          type: "put",
          key: "/wb/x",
          value: b("x2"),
          prevValue: b("x1"),
          modRevision: r0 + 2,
          createRevision: r0 + 1,
        });
        expect(w.batches[2][0]).toEqual({ type: "delete", key: "/wb/y", prevValue: b("y1"), modRevision: r0 + 3, createRevision: r0 + 2 });
      } finally {
        await w.stop();
      }
    });

    it("sees only keys under its prefix", async () => {
      const r0 = await s().currentRevision();
      const w = startWatch(s(), "/wp/a/", r0 + 1);
      try {
        await s().create("/wp/ab", b(""));
        await s().create("/wp/a", b(""));
        await s().create("/wp/a/1", b(""));
        await s().create("/wp/b/1", b(""));
        await s().create("/wp/a/2", b(""));
        expect((await w.waitFor(2)).map((e) => e.key)).toEqual(["/wp/a/1", "/wp/a/2"]);
      } finally {
        await w.stop();
      }
    });

    it("a list at R followed by a watch from R + 1 misses nothing", async () => {
      await s().create("/wl/a", b("1"));
      const { items, revision } = await s().list("/wl/");
      expect(items).toHaveLength(1);
      const next = await s().create("/wl/b", b("2")); // between the list and the watch
      const w = startWatch(s(), "/wl/", revision + 1);
      try {
        await s().delete("/wl/a");
        expect((await w.waitFor(2)).map(brief)).toEqual([`put /wl/b @${next.modRevision}`, `delete /wl/a @${next.modRevision + 1}`]);
      } finally {
        await w.stop();
      }
    });

    it("from revision 0 starts with the next write", async () => {
      await s().create("/w0/old", b(""));
      const w = startWatch(s(), "/w0/", 0);
      try {
        await new Promise((r) => setTimeout(r, 100)); // let the watch start
        await s().create("/w0/new", b(""));
        expect((await w.waitFor(1)).map((e) => e.key)).toEqual(["/w0/new"]);
      } finally {
        await w.stop();
      }
    });

    it("may start at a future revision", async () => {
      const r0 = await s().currentRevision();
      const w = startWatch(s(), "/wf/", r0 + 3);
      try {
        await new Promise((r) => setTimeout(r, 100));
        for (const k of ["a", "b", "c", "d"]) await s().create(`/wf/${k}`, b(""));
        expect((await w.waitFor(2)).map(brief)).toEqual([`put /wf/c @${r0 + 3}`, `put /wf/d @${r0 + 4}`]);
      } finally {
        await w.stop();
      }
    });

    it("throws Compacted when started from a compacted revision", async () => {
      const r0 = await s().currentRevision();
      const a = await s().create("/wc/a", b("1"));
      const a2 = await s().update("/wc/a", b("2"), a.modRevision);
      await s().compact(a2.modRevision);
      const w = startWatch(s(), "/wc/", r0 + 1);
      await w.settled();
      expect(w.error()).toBeInstanceOf(StoreError);
      expect((w.error() as StoreError).code).toBe("Compacted");
      expect(w.events()).toEqual([]);
      // From the compaction point itself the watch works.
      const ok = startWatch(s(), "/wc/", a2.modRevision);
      try {
        expect((await ok.waitFor(1)).map(brief)).toEqual([`put /wc/a @${a2.modRevision}`]);
      } finally {
        await ok.stop();
      }
    });

    it("ends quietly when the signal aborts, or was aborted already", async () => {
      const r0 = await s().currentRevision();
      const w = startWatch(s(), "/wa/", r0 + 1);
      await s().create("/wa/a", b(""));
      await w.waitFor(1);
      await w.stop();
      expect(w.ended()).toBe(true);
      expect(w.error()).toBeUndefined();

      const ac = new AbortController();
      ac.abort();
      const seen: WatchEvent[][] = [];
      for await (const batch of s().watch("/wa/", r0 + 1, ac.signal)) seen.push(batch);
      expect(seen).toEqual([]);
    });

    it("ends when the consumer breaks out of the loop", async () => {
      const r0 = await s().currentRevision();
      await s().create("/wk/a", b(""));
      await s().create("/wk/b", b(""));
      const ac = new AbortController();
      const keys: string[] = [];
      for await (const batch of s().watch("/wk/", r0 + 1, ac.signal)) {
        keys.push(batch[0].key);
        if (keys.length === 1) break;
      }
      expect(keys).toEqual(["/wk/a"]);
      await s().create("/wk/c", b("")); // writes carry on
    });

    it("a consumer that does not read never blocks writers, and later gets every event", async () => {
      const r0 = await s().currentRevision();
      const ac = new AbortController();
      const it = s().watch("/ws/", r0 + 1, ac.signal)[Symbol.asyncIterator]();
      const first = it.next(); // open the watch, then stop reading
      for (let i = 0; i < 200; i++) await s().create(`/ws/${String(i).padStart(3, "0")}`, b(String(i)));
      const got: WatchEvent[] = [];
      let res = await first;
      while (!res.done) {
        got.push(...res.value);
        if (got.length === 200) break;
        res = await it.next();
      }
      ac.abort();
      await it.return?.();
      expect(got.map((e) => e.modRevision)).toEqual(Array.from({ length: 200 }, (_, i) => r0 + 1 + i));
    });

    it("fans out to many watchers", async () => {
      const r0 = await s().currentRevision();
      const watchers = Array.from({ length: 100 }, (_, i) => startWatch(s(), i % 2 ? "/wm/" : "/wm/even/", r0 + 1));
      try {
        for (let i = 0; i < 10; i++) await s().create(`/wm/${i % 2 ? "odd" : "even"}/${i}`, b(""));
        await Promise.all(watchers.map((w, i) => w.waitFor(i % 2 ? 10 : 5)));
        for (const [i, w] of watchers.entries()) expect(w.events()).toHaveLength(i % 2 ? 10 : 5);
      } finally {
        await Promise.all(watchers.map((w) => w.stop()));
      }
    });
  });
}
