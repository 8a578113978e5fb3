// The watch cache's index on spec.nodeName: a watch that selects one node sees exactly the events
// of that node's pods — including a pod arriving by binding and leaving by deletion — while
// watches without that selector keep seeing everything.
import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { encode, objectKey } from "./objects.ts";
import { createResourceOps } from "./resources.ts";
import { createWatchCache, type CacheWatcher, type WatchCache } from "./watchcache.ts";

const podKind = kindByName("Pod")!;

function pod(name: string, nodeName = "", ns = "default"): Pod {
  return create(PodSchema, { metadata: { name, namespace: ns, labels: { app: "web" } }, spec: { nodeName } });
}

let store: Store;
let cache: WatchCache;
afterEach(() => cache?.stop());

async function setup() {
  store = createMemoryStore();
  cache = createWatchCache(podKind, store);
  await cache.start();
  const ops = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
  const watch = (fieldSelector: string, labelSelector = "", namespace = "") =>
    cache.watch(cache.revision(), ops.filter(namespace, labelSelector, fieldSelector));
  return { watch };
}

const revs = new Map<string, number>();
async function put(p: Pod): Promise<void> {
  const key = objectKey(podKind, p as ApiObject);
  const prev = revs.get(key);
  const kv = prev === undefined ? await store.create(key, encode(podKind, p as ApiObject)) : await store.update(key, encode(podKind, p as ApiObject), prev);
  revs.set(key, kv.modRevision);
}
async function remove(p: Pod): Promise<void> {
  const key = objectKey(podKind, p as ApiObject);
  await store.delete(key);
  revs.delete(key);
}

/** What a watcher has seen once the cache caught up with the store: "TYPE name" per event. */
async function seen(w: CacheWatcher): Promise<string[]> {
  await expect.poll(() => cache.revision(), { timeout: 2000 }).toBe(await store.currentRevision());
  const out = await w.next(1);
  return out.map((e) => `${e.type} ${e.obj?.metadata?.name}`);
}

describe("watch cache index on spec.nodeName", () => {
  it("delivers a node's pods to that node's watch only, and everything to the others", async () => {
    revs.clear();
    const { watch } = await setup();
    const nodeA = watch("spec.nodeName=a");
    const nodeB = watch("spec.nodeName=b");
    const unbound = watch("spec.nodeName=");
    const all = watch("");
    const labelled = watch("", "app=web", "default");
    const notA = watch("spec.nodeName!=a");

    const p1 = pod("p1");
    await put(p1); // created unbound
    p1.spec!.nodeName = "a";
    await put(p1); // bound to a
    await put(pod("p2", "b", "other"));
    await remove(p1);

    expect(await seen(nodeA)).toEqual(["ADDED p1", "DELETED p1"]);
    expect(await seen(nodeB)).toEqual(["ADDED p2"]);
    expect(await seen(unbound)).toEqual(["ADDED p1", "DELETED p1"]);
    expect(await seen(all)).toEqual(["ADDED p1", "MODIFIED p1", "ADDED p2", "DELETED p1"]);
    expect(await seen(labelled)).toEqual(["ADDED p1", "MODIFIED p1", "DELETED p1"]);
    expect(await seen(notA)).toEqual(["ADDED p1", "DELETED p1", "ADDED p2"]);
  });

  it("a closed watch no longer counts, indexed or not", async () => {
    const { watch } = await setup();
    const a = watch("spec.nodeName=a");
    const any = watch("");
    expect(cache.watcherCount()).toBe(2);
    a.close();
    any.close();
    expect(cache.watcherCount()).toBe(0);
    await put(pod("late", "a"));
    await expect(a.next(1)).rejects.toThrow(/watch closed/);
  });
});

describe("watch cache resumes from its history", () => {
  it("replays, a slice per read, every event after the resume version that passes the filter, then goes live", async () => {
    revs.clear();
    await setup();
    const from = cache.revision();
    // More events than one replay slice, half of them on node a.
    for (let i = 0; i < 600; i++) await put(pod(`r-${i}`, i % 2 === 0 ? "a" : "b"));
    await expect.poll(() => cache.revision(), { timeout: 2000 }).toBe(await store.currentRevision());
    const ops = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
    const onA = cache.watch(from, ops.filter("", "", "spec.nodeName=a"));
    const everything = cache.watch(from, () => true);
    await put(pod("live", "a"));
    const drain = async (w: CacheWatcher) => {
      const out: string[] = [];
      for (let reads = 0; !out.includes("ADDED live"); reads++) {
        const batch = await w.next(1000);
        expect(batch.length).toBeLessThanOrEqual(300);
        out.push(...batch.map((e) => `${e.type} ${e.obj?.metadata?.name}`));
      }
      return out;
    };
    expect(await drain(onA)).toEqual([...Array.from({ length: 300 }, (_, i) => `ADDED r-${2 * i}`), "ADDED live"]);
    const all = await drain(everything);
    expect(all.length).toBe(601);
    expect(all.slice(0, 3)).toEqual(["ADDED r-0", "ADDED r-1", "ADDED r-2"]);
  });

  it("a resume that the history moves past while it replays ends OUT_OF_RANGE", async () => {
    store = createMemoryStore();
    cache = createWatchCache(podKind, store, { historySize: 300 });
    await cache.start();
    revs.clear();
    const from = cache.revision();
    for (let i = 0; i < 280; i++) await put(pod(`o-${i}`));
    await expect.poll(() => cache.revision(), { timeout: 2000 }).toBe(await store.currentRevision());
    const w = cache.watch(from, () => true);
    expect((await w.next(1000)).length).toBeGreaterThan(0); // the first slice
    for (let i = 0; i < 400; i++) await put(pod(`n-${i}`));
    await expect.poll(() => cache.revision(), { timeout: 2000 }).toBe(await store.currentRevision());
    const err = await w.next(1000).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/too old .*list again and watch from the new resource version/);
    expect(cache.watcherCount()).toBe(0);
  });
});
