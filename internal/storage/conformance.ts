// The one conformance suite every Store implementation must pass (memory.test.ts runs it on the
// memory store, test/storage/etcd.test.ts on a real etcd). Tests only assume revisions relative
// to what they observe, so that one etcd can serve every test (each under its own key prefix).

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeWatchConformance } from "./conformance-watch.ts";
import { isStoreError, keyAfter, StoreError, type KeyValue, type Store, type WrittenKeyValue } from "./store.ts";

export type MakeStore = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

const enc = new TextEncoder();
const dec = new TextDecoder();
export const b = (s: string): Uint8Array => enc.encode(s);
export const str = (u: Uint8Array | undefined): string | undefined => (u === undefined ? undefined : dec.decode(u));

/** Awaits a promise that must reject with a StoreError of `code`; returns the error. */
export async function expectStoreError(p: Promise<unknown>, code: StoreError["code"]): Promise<StoreError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected StoreError ${code}`).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe(code);
  return err as StoreError;
}

/** Shared per-test state: a fresh store from makeStore, closed afterwards. */
export function useStore(makeStore: MakeStore): () => Store {
  let store: Store | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  beforeEach(async () => {
    ({ store, cleanup } = await makeStore());
  });
  afterEach(async () => {
    await cleanup?.();
    store = undefined;
    cleanup = undefined;
  });
  return () => {
    if (!store) throw new Error("no store outside a test");
    return store;
  };
}

/** What a read returns for a key a write answered with (writes carry no createRevision). */
const stored = (kv: WrittenKeyValue, createRevision: number): KeyValue => ({ ...kv, createRevision });

export function describeStoreConformance(name: string, makeStore: MakeStore): void {
  describe(`Store conformance: ${name}`, () => {
    const s = useStore(makeStore);

    describe("revisions and reads", () => {
      it("bumps the revision by exactly one per write", async () => {
        const r0 = await s().currentRevision();
        const created = await s().create("/rev/a", b("1"));
        // A write answers key, value and revision, no createRevision (etcd would read the previous version for it); reads carry it.
        expect(created).toEqual({ key: "/rev/a", value: b("1"), modRevision: r0 + 1 });
        expect(await s().get("/rev/a")).toEqual({ key: "/rev/a", value: b("1"), createRevision: r0 + 1, modRevision: r0 + 1 });
        const updated = await s().update("/rev/a", b("2"), created.modRevision);
        expect(updated).toEqual({ key: "/rev/a", value: b("2"), modRevision: r0 + 2 });
        expect(await s().get("/rev/a")).toEqual({ key: "/rev/a", value: b("2"), createRevision: r0 + 1, modRevision: r0 + 2 });
        const deleted = await s().delete("/rev/a");
        expect(deleted.deleteRevision).toBe(r0 + 3);
        expect(await s().currentRevision()).toBe(r0 + 3);
      });

      it("gets a key with its revisions, undefined when absent, bytes intact", async () => {
        expect(await s().get("/get/missing")).toBeUndefined();
        const raw = new Uint8Array([0, 255, 1, 128, 10, 0]);
        const kv = await s().create("/get/bin", raw);
        raw[0] = 42; // the store must not keep the caller's buffer
        expect(await s().get("/get/bin")).toEqual({ ...stored(kv, kv.modRevision), value: new Uint8Array([0, 255, 1, 128, 10, 0]) });
      });

      it("lists keys under a prefix, sorted, with the revision read at; counts them", async () => {
        for (const k of ["/l/b", "/l/a", "/l/c/x", "/lx", "/k/a"]) await s().create(k, b(k));
        const rev = await s().currentRevision();
        const { items, revision } = await s().list("/l/");
        expect(items.map((kv) => kv.key)).toEqual(["/l/a", "/l/b", "/l/c/x"]);
        expect(items.map((kv) => str(kv.value))).toEqual(["/l/a", "/l/b", "/l/c/x"]);
        expect(revision).toBe(rev);
        expect(await s().count("/l/")).toBe(3);
        expect(await s().count("/l")).toBe(4);
        expect(await s().count("/none/")).toBe(0);
        expect((await s().list("/none/")).items).toEqual([]);
      });

      it("lists at a past revision", async () => {
        await s().create("/past/a", b("a1"));
        const bkv = await s().create("/past/b", b("b1"));
        const rev = await s().currentRevision();
        const a = await s().get("/past/a");
        await s().update("/past/a", b("a2"), a!.modRevision);
        await s().delete("/past/b");
        await s().create("/past/c", b("c1"));

        const then = await s().list("/past/", { revision: rev });
        expect(then.revision).toBe(rev);
        expect(then.items.map((kv) => [kv.key, str(kv.value)])).toEqual([
          ["/past/a", "a1"],
          ["/past/b", "b1"],
        ]);
        expect(then.items[1]).toEqual(stored(bkv, bkv.modRevision));
        const now = await s().list("/past/");
        expect(now.items.map((kv) => [kv.key, str(kv.value)])).toEqual([
          ["/past/a", "a2"],
          ["/past/c", "c1"],
        ]);
        expect(now.revision).toBe(rev + 3);
      });

      it("reads in pages: limit, startKey and remaining, every page at the first page's revision", async () => {
        for (const k of ["/pg/a", "/pg/b", "/pg/c", "/pg/d", "/pg/e", "/pgx"]) await s().create(k, b(k));
        const first = await s().list("/pg/", { limit: 2 });
        expect(first.items.map((kv) => kv.key)).toEqual(["/pg/a", "/pg/b"]);
        expect(first.remaining).toBe(3);
        // Changes after the first page must not show in the later pages read at its revision.
        await s().delete("/pg/c");
        await s().create("/pg/bb", b("new"));
        const d = await s().get("/pg/d");
        await s().update("/pg/d", b("changed"), d!.modRevision);
        const second = await s().list("/pg/", { limit: 2, startKey: keyAfter("/pg/b"), revision: first.revision });
        expect(second.items.map((kv) => [kv.key, str(kv.value)])).toEqual([
          ["/pg/c", "/pg/c"],
          ["/pg/d", "/pg/d"],
        ]);
        expect(second).toMatchObject({ revision: first.revision, remaining: 1 });
        const last = await s().list("/pg/", { limit: 2, startKey: keyAfter("/pg/d"), revision: first.revision });
        expect(last.items.map((kv) => kv.key)).toEqual(["/pg/e"]);
        expect(last.remaining).toBe(0);
        // Now, without a revision: the current state, from a start key, with no limit.
        const now = await s().list("/pg/", { startKey: "/pg/b" });
        expect(now.items.map((kv) => kv.key)).toEqual(["/pg/b", "/pg/bb", "/pg/d", "/pg/e"]);
        expect(now.remaining).toBe(0);
        expect((await s().list("/pg/", { startKey: "/pg/z", limit: 5 })).items).toEqual([]);
      });

      it("lists every key of a range larger than one internal page, at one revision", async () => {
        const keys = Array.from({ length: 100 }, (_, i) => `/many/${String(i).padStart(3, "0")}`);
        const { revision } = await s().txn(keys.map((key) => ({ op: "create" as const, key, value: b(key) })));
        await s().create("/many/zzz", b("later"));
        const all = await s().list("/many/", { revision });
        expect(all.items.map((kv) => kv.key)).toEqual(keys);
        expect(all.items.map((kv) => str(kv.value))).toEqual(keys);
        expect(all).toMatchObject({ revision, remaining: 0 });
      });

      it("refuses a start key outside the prefix and a negative limit", async () => {
        await expect(s().list("/pg/", { startKey: "/other/a" })).rejects.toThrow(RangeError);
        await expect(s().list("/pg/", { limit: -1 })).rejects.toThrow(RangeError);
      });

      it("rejects a list at a future revision", async () => {
        const rev = await s().currentRevision();
        await expect(s().list("/", { revision: rev + 1000 })).rejects.toThrow(RangeError);
      });
    });

    describe("writes with preconditions", () => {
      it("create fails with AlreadyExists on an existing key", async () => {
        const kv = await s().create("/c/a", b("1"));
        const err = await expectStoreError(s().create("/c/a", b("2")), "AlreadyExists");
        expect(err.key).toBe("/c/a");
        expect(err.current).toEqual(stored(kv, kv.modRevision));
        expect(str((await s().get("/c/a"))!.value)).toBe("1");
      });

      it("update fails with NotFound when absent and Conflict (with current) when stale", async () => {
        const nf = await expectStoreError(s().update("/u/none", b("x"), 1), "NotFound");
        expect(nf.key).toBe("/u/none");
        const v1 = await s().create("/u/a", b("1"));
        const v2 = await s().update("/u/a", b("2"), v1.modRevision);
        const err = await expectStoreError(s().update("/u/a", b("3"), v1.modRevision), "Conflict");
        expect(err.key).toBe("/u/a");
        expect(err.current).toEqual(stored(v2, v1.modRevision));
        expect(await s().get("/u/a")).toEqual(stored(v2, v1.modRevision));
      });

      it("delete: NotFound, Conflict with current, returns the deleted kv; re-create starts anew", async () => {
        await expectStoreError(s().delete("/d/none"), "NotFound");
        await expectStoreError(s().delete("/d/none", 5), "NotFound");
        const v1 = await s().create("/d/a", b("1"));
        const v2 = await s().update("/d/a", b("2"), v1.modRevision);
        const err = await expectStoreError(s().delete("/d/a", v1.modRevision), "Conflict");
        expect(err.current).toEqual(stored(v2, v1.modRevision));
        const deleted = await s().delete("/d/a", v2.modRevision);
        expect(deleted).toEqual({ ...stored(v2, v1.modRevision), deleteRevision: v2.modRevision + 1 });
        expect(await s().get("/d/a")).toBeUndefined();
        await s().create("/d/a", b("3"));
        expect((await s().get("/d/a"))?.createRevision).toBe(deleted.deleteRevision + 1);
        // delete without a precondition removes whatever is there
        expect((await s().delete("/d/a")).value).toEqual(b("3"));
      });

      it("txn applies every op at one revision, or none of them", async () => {
        const x = await s().create("/t/x", b("x1"));
        const xCreated = x.modRevision;
        await s().create("/t/z", b("z1"));
        const r0 = await s().currentRevision();

        const stale = await expectStoreError(
          s().txn([
            { op: "create", key: "/t/y", value: b("y1") },
            { op: "update", key: "/t/x", value: b("x2"), expectedModRevision: x.modRevision - 1 },
          ]),
          "Conflict",
        );
        expect(stale.key).toBe("/t/x");
        expect(stale.current).toEqual(stored(x, xCreated));
        await expectStoreError(s().txn([{ op: "delete", key: "/t/none" }]), "NotFound");
        await expectStoreError(s().txn([{ op: "create", key: "/t/z", value: b("") }]), "AlreadyExists");
        expect(await s().currentRevision()).toBe(r0);
        expect(await s().get("/t/y")).toBeUndefined();

        const res = await s().txn([
          { op: "create", key: "/t/y", value: b("y1") },
          { op: "update", key: "/t/x", value: b("x2"), expectedModRevision: x.modRevision },
          { op: "delete", key: "/t/z" },
        ]);
        expect(res.revision).toBe(r0 + 1);
        expect(res.results[0]).toEqual({ key: "/t/y", value: b("y1"), modRevision: r0 + 1 });
        expect(res.results[1]).toEqual({ key: "/t/x", value: b("x2"), modRevision: r0 + 1 });
        expect(await s().get("/t/x")).toEqual({ key: "/t/x", value: b("x2"), createRevision: xCreated, modRevision: r0 + 1 });
        expect(res.results[2]).toMatchObject({ key: "/t/z", value: b("z1"), deleteRevision: r0 + 1 });
        expect((await s().list("/t/")).items.map((kv) => kv.key)).toEqual(["/t/x", "/t/y"]);
        expect(await s().currentRevision()).toBe(r0 + 1);
      });

      it("txn rejects a key used twice; an empty txn writes nothing", async () => {
        await expect(
          s().txn([
            { op: "create", key: "/t2/a", value: b("1") },
            { op: "delete", key: "/t2/a" },
          ]),
        ).rejects.toThrow(RangeError);
        await expect(s().create("", b(""))).rejects.toThrow(RangeError);
        const r0 = await s().currentRevision();
        expect(await s().txn([])).toEqual({ revision: r0, results: [] });
        // etcd's default --max-txn-ops is 128; the memory store enforces the same default.
        const many = (n: number) => Array.from({ length: n }, (_, i) => ({ op: "create" as const, key: `/t2/m${i}`, value: b("") }));
        await expect(s().txn(many(129))).rejects.toThrow(RangeError);
        expect((await s().txn(many(128))).results).toHaveLength(128);
      });

      it("50 concurrent updates from one revision: exactly one wins, the rest see it as current", async () => {
        const base = await s().create("/race/a", b("0"));
        const outcomes = await Promise.allSettled(
          Array.from({ length: 50 }, (_, i) => s().update("/race/a", b(String(i + 1)), base.modRevision)),
        );
        const wins = outcomes.filter((o) => o.status === "fulfilled");
        expect(wins).toHaveLength(1);
        const winner = (wins[0] as PromiseFulfilledResult<Awaited<ReturnType<Store["update"]>>>).value;
        expect(winner.modRevision).toBe(base.modRevision + 1);
        for (const o of outcomes) {
          if (o.status === "fulfilled") continue;
          expect(isStoreError(o.reason, "Conflict")).toBe(true);
          expect((o.reason as StoreError).current).toEqual(stored(winner, base.modRevision));
        }
      });

      it("50 concurrent read-modify-write loops: one winner per revision, no lost update", async () => {
        await s().create("/race/counter", b("0"));
        const r0 = await s().currentRevision();
        const winRevisions: number[] = [];
        await Promise.all(
          Array.from({ length: 50 }, async () => {
            for (;;) {
              const cur = (await s().get("/race/counter"))!;
              try {
                const kv = await s().update("/race/counter", b(String(Number(str(cur.value)) + 1)), cur.modRevision);
                winRevisions.push(kv.modRevision);
                return;
              } catch (err) {
                if (!isStoreError(err, "Conflict")) throw err;
              }
            }
          }),
        );
        expect(str((await s().get("/race/counter"))!.value)).toBe("50");
        expect(winRevisions.sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => r0 + 1 + i));
      });
    });

    describe("compaction and lifecycle", () => {
      it("compact keeps the compaction revision readable and rejects older reads", async () => {
        await s().create("/cp/a", b("1"));
        const old = await s().currentRevision();
        const kv = await s().update("/cp/a", b("2"), (await s().get("/cp/a"))!.modRevision);
        await s().create("/cp/b", b("3"));
        await s().compact(kv.modRevision);
        await expectStoreError(s().list("/cp/", { revision: old }), "Compacted");
        await expectStoreError(s().list("/cp/", { revision: old, startKey: "/cp/b", limit: 1 }), "Compacted");
        const at = await s().list("/cp/", { revision: kv.modRevision });
        expect(at.items.map((x) => str(x.value))).toEqual(["2"]);
        await s().compact(kv.modRevision); // again: a no-op
        await s().compact(old); // older than the compaction point: a no-op
        const rev = await s().currentRevision();
        await expect(s().compact(rev + 100)).rejects.toThrow(RangeError);
      });

      it("is ready, and after close() reports not ready and fails calls with Unavailable", async () => {
        expect(await s().ready()).toBe(true);
        await s().close();
        expect(await s().ready()).toBe(false);
        await expectStoreError(s().get("/x"), "Unavailable");
        await expectStoreError(s().create("/x", b("")), "Unavailable");
      });
    });

    describeWatchConformance(s);
  });
}
