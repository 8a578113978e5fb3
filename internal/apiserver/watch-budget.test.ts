// The watch buffer budget on a watch cache over the memory store: a watcher that does not read is
// cut once it holds more than its share, its bytes handed back at once (before its client reads
// again), and it learns why and where to resume when it does read; over the total, the largest
// holders go first and a watcher that keeps up is left alone.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigMapSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { afterEach, describe, expect, it } from "vitest";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { encode, objectKey } from "./objects.ts";
import { createWatchBudget, type WatchBudget } from "./watch-budget.ts";
import { createWatchCache, type WatchCache } from "./watchcache.ts";

const cmKind = kindByName("ConfigMap")!;
let store: Store;
let cache: WatchCache;
let budget: WatchBudget;
afterEach(() => cache?.stop());

async function setup(perWatcherBytes: number, totalBytes: number) {
  store = createMemoryStore();
  budget = createWatchBudget({ perWatcherBytes, totalBytes });
  cache = createWatchCache(cmKind, store, { budget });
  await cache.start();
}

/** Writes n ConfigMaps of about 1 KB and waits until the cache has them. */
async function write(n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const cm = create(ConfigMapSchema, { metadata: { name: `cm-${i}`, namespace: "default" }, data: { v: "x".repeat(1000) } }) as ApiObject;
    await store.create(objectKey(cmKind, cm), encode(cmKind, cm));
  }
  await expect.poll(() => cache.revision(), { timeout: 2000 }).toBe(await store.currentRevision());
}

const all = () => true;

describe("watch buffer budget", () => {
  it("cuts a watcher over its own budget, frees its bytes at once, and tells it where to resume", async () => {
    await setup(10_000, 1_000_000);
    const slow = cache.watch(cache.revision(), all);
    await write(5);
    expect(budget.used()).toBeGreaterThan(5000);
    await write(10, 5);
    // Cut: nothing charged any more, though the client has not read.
    expect(budget.used()).toBe(0);
    expect(budget.cuts.watcher).toBe(1);
    expect(cache.watcherCount()).toBe(0);
    const err = await slow.next(10).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code[(err as ConnectError).code], (err as ConnectError).rawMessage]).toEqual([
      "ResourceExhausted",
      expect.stringMatching(/^watch too slow: \d+ bytes of events unsent \(at most 10000 per watch\); resume from the last resource version you received/),
    ]);
  });

  it("over the total, cuts the largest holders first and spares a watcher that reads", async () => {
    await setup(1_000_000, 20_000);
    const early = cache.watch(cache.revision(), all);
    await write(8);
    const late = cache.watch(cache.revision(), all);
    const reader = cache.watch(cache.revision(), all);
    for (let i = 0; i < 12; i++) {
      await write(1, 100 + i);
      expect((await reader.next(10)).length).toBe(1);
    }
    expect(budget.cuts.total).toBeGreaterThanOrEqual(1);
    expect(await early.next(10).catch((e) => Code[ConnectError.from(e).code])).toBe("ResourceExhausted");
    expect(budget.used()).toBeLessThanOrEqual(20_000);
    // The smaller holder and the reader are still there.
    expect(await reader.next(10)).toEqual([]);
    expect((await late.next(10)).length).toBe(12);
  });
});
