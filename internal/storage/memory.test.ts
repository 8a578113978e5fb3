import { describe, expect, it } from "vitest";
import { b, describeStoreConformance, expectStoreError } from "./conformance.ts";
import { startWatch } from "./conformance-watch.ts";
import { createMemoryStore } from "./memory.ts";
import { StoreError } from "./store.ts";

describeStoreConformance("memory", async () => {
  const store = createMemoryStore();
  return { store, cleanup: () => store.close() };
});

describe("memory store specifics", () => {
  it("starts at revision 1, like etcd", async () => {
    const store = createMemoryStore();
    expect(await store.currentRevision()).toBe(1);
    expect((await store.create("/a", b(""))).modRevision).toBe(2);
  });

  it("compacts history beyond historyLimit: old lists and watches get Compacted", async () => {
    const store = createMemoryStore({ historyLimit: 10 });
    for (let i = 0; i < 30; i++) await store.create(`/k/${i}`, b(String(i))); // revisions 2..31
    const err = await expectStoreError(store.list("/k/", { revision: 5 }), "Compacted");
    expect(err.compactRevision).toBe(22); // the last 10 events (22..31) are kept
    expect((await store.list("/k/", { revision: 22 })).items).toHaveLength(21);
    const late = startWatch(store, "/k/", 21);
    await late.settled();
    expect((late.error() as StoreError).code).toBe("Compacted");
    const w = startWatch(store, "/k/", 22);
    expect(await w.waitFor(10)).toHaveLength(10);
    await w.stop();
  });

  it("a watcher that falls behind the history limit fails with Compacted later on", async () => {
    const store = createMemoryStore({ historyLimit: 20 });
    const ac = new AbortController();
    const it = store.watch("/s/", 2, ac.signal)[Symbol.asyncIterator]();
    await store.create("/s/0", b(""));
    expect((await it.next()).value).toHaveLength(1); // then the consumer stalls
    for (let i = 1; i < 50; i++) await store.create(`/s/${i}`, b(""));
    await expectStoreError(it.next(), "Compacted");
  });

  it("a lagging watcher only fails if history it needed was dropped", async () => {
    const store = createMemoryStore({ historyLimit: 20 });
    const ac = new AbortController();
    const it = store.watch("/mine/", 2, ac.signal)[Symbol.asyncIterator]();
    const first = it.next(); // waiting: unrelated writes must not push it onto the compaction path
    for (let i = 0; i < 50; i++) await store.create(`/other/${i}`, b(""));
    const mine = await store.create("/mine/a", b(""));
    expect((await first).value).toEqual([expect.objectContaining({ key: "/mine/a", modRevision: mine.modRevision })]);
    // Not waiting now (holding a batch), while unrelated history goes by: still fine.
    for (let i = 50; i < 100; i++) await store.create(`/other/${i}`, b(""));
    const next = it.next();
    await store.create("/mine/b", b(""));
    expect((await next).value).toEqual([expect.objectContaining({ key: "/mine/b" })]);
    ac.abort();
    expect((await it.next()).done).toBe(true);
  });

  it("close() ends running watches quietly", async () => {
    const store = createMemoryStore();
    const w = startWatch(store, "/", 0);
    await new Promise((r) => setTimeout(r, 10));
    await store.close();
    await w.settled();
    expect(w.error()).toBeUndefined();
  });

  it("keeps up with thousands of keys and hundreds of watchers", async () => {
    const store = createMemoryStore();
    const watchers = Array.from({ length: 300 }, (_, i) => startWatch(store, `/ns${i % 30}/`, 0));
    await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    for (let i = 0; i < 3000; i++) await store.create(`/ns${i % 30}/pod-${i}`, b(String(i)));
    const mid = await store.currentRevision();
    for (let i = 0; i < 3000; i += 2) await store.delete(`/ns${i % 30}/pod-${i}`);
    const elapsed = performance.now() - t0;
    // Even i were deleted: /ns0/ (all even) is empty now, /ns1/ (all odd) untouched.
    expect((await store.list("/ns0/", { revision: mid })).items).toHaveLength(100);
    expect((await store.list("/ns0/")).items).toHaveLength(0);
    expect((await store.list("/ns1/")).items).toHaveLength(100);
    // A watcher on an even namespace saw 100 creates and 100 deletes, an odd one 100 creates.
    await Promise.all(watchers.map((w, i) => w.waitFor((i % 30) % 2 === 0 ? 200 : 100)));
    await Promise.all(watchers.map((w) => w.stop()));
    expect(elapsed).toBeLessThan(5000);
  });
});
