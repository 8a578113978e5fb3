// The watch cache takes the object this server just wrote for that write's event instead of
// decoding the bytes again (noteWritten), and decodes everything else: writes of another server
// on the same storage, and writes whose event came before the writer's reply.
import { clone, create, equals } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store, WatchEvent } from "../storage/store.ts";
import { decode, encode, keyFor } from "./objects.ts";
import { bindPod, createResourceOps } from "./resources.ts";
import { createWatchCache, type WatchCache } from "./watchcache.ts";

const podKind = kindByName("Pod")!;
const key = keyFor(podKind, "default", "p");
let cache: WatchCache | undefined;
afterEach(() => cache?.stop());

/** A store whose watch events wait until released: the writer's reply then always comes first. */
function gatedStore(): { store: Store; release(): void } {
  const memory = createMemoryStore();
  let open: () => void = () => undefined;
  let gate = new Promise<void>((r) => (open = r));
  return {
    store: {
      ...memory,
      async *watch(prefix, from, signal) {
        for await (const batch of memory.watch(prefix, from, signal)) {
          await gate;
          yield batch as WatchEvent[];
        }
      },
    },
    release() {
      open();
      gate = new Promise<void>((r) => (open = r));
    },
  };
}

async function caughtUp(c: WatchCache, store: Store, release?: () => void): Promise<void> {
  await expect
    .poll(async () => {
      release?.();
      return c.revision();
    }, { timeout: 5000 })
    .toBe(await store.currentRevision());
}

/** What storage holds for the pod, decoded. */
async function stored(store: Store): Promise<Pod> {
  const kv = (await store.get(key))!;
  return decode(podKind, kv.value, kv.modRevision) as unknown as Pod;
}

describe("the watch cache and this server's own writes", () => {
  it("holds the very object each write returned (create, bind, status), equal to what storage holds, and a watcher gets every event", async () => {
    const { store, release } = gatedStore();
    cache = createWatchCache(podKind, store);
    const started = cache.start();
    release();
    await started;
    const ops = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
    const w = cache.watch(cache.revision(), ops.filter("", "", ""));

    const created = await ops.create(create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { containers: [{ name: "c", image: "busybox" }] } }) as unknown as ApiObject);
    await caughtUp(cache, store, release);
    expect(cache.get(key)).toBe(created);

    const bound = await bindPod(ops, store, "default", "p", "n1", "", cache);
    await caughtUp(cache, store, release);
    expect(cache.get(key)).toBe(bound);

    const next = clone(PodSchema, bound as unknown as Pod);
    next.status!.phase = "Running";
    const running = await ops.updateStatus(next as unknown as ApiObject);
    await caughtUp(cache, store, release);
    expect(cache.get(key)).toBe(running);
    expect(equals(PodSchema, running as unknown as Pod, await stored(store))).toBe(true);

    const events = await w.next(1);
    expect(events.map((e) => `${e.type} ${(e.obj as unknown as Pod).spec?.nodeName || "-"} ${(e.obj as unknown as Pod).status?.phase || "-"} ${e.obj?.metadata?.resourceVersion}`)).toEqual([
      `ADDED - Pending ${created.metadata!.resourceVersion}`,
      `MODIFIED n1 Pending ${bound.metadata!.resourceVersion}`,
      `MODIFIED n1 Running ${running.metadata!.resourceVersion}`,
    ]);
  });

  it("an event that comes before its write's reply takes the written object's parts at the event's revision, equal to storage", async () => {
    const memory = createMemoryStore();
    // Replies wait until the cache has applied the write's event: the event always comes first.
    const replyAfterEvent = async <T extends { modRevision: number }>(kv: T): Promise<T> => {
      await expect.poll(() => cache!.revision(), { timeout: 5000 }).toBeGreaterThanOrEqual(kv.modRevision);
      return kv;
    };
    const store: Store = {
      ...memory,
      create: async (k, v) => replyAfterEvent(await memory.create(k, v)),
      update: async (k, v, rv) => replyAfterEvent(await memory.update(k, v, rv)),
    };
    cache = createWatchCache(podKind, store);
    await cache.start();
    const ops = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
    const w = cache.watch(cache.revision(), ops.filter("", "", ""));

    const created = await ops.create(create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { containers: [{ name: "c", image: "busybox" }] } }) as unknown as ApiObject);
    const bound = await bindPod(ops, store, "default", "p", "n1", "", cache);
    const inCache = cache.get(key)!;
    // Not decoded: the bound pod's own spec, with its own metadata at the write's revision.
    expect(inCache.spec).toBe(bound.spec);
    expect(inCache.metadata).not.toBe(bound.metadata);
    expect(inCache.metadata!.resourceVersion).toBe(bound.metadata!.resourceVersion);
    expect(equals(PodSchema, inCache as unknown as Pod, await stored(store))).toBe(true);

    const events = await w.next(1);
    expect(events.map((e) => `${e.type} ${(e.obj as unknown as Pod).spec?.nodeName || "-"} ${e.obj?.metadata?.resourceVersion}`)).toEqual([
      `ADDED - ${created.metadata!.resourceVersion}`,
      `MODIFIED n1 ${bound.metadata!.resourceVersion}`,
    ]);
  });

  it("decodes what another server wrote, and ignores a note that comes after its write's event", async () => {
    const store = createMemoryStore();
    cache = createWatchCache(podKind, store);
    await cache.start();
    const pod = create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { nodeName: "n1" } });
    const kv = await store.create(key, encode(podKind, pod as unknown as ApiObject));
    await caughtUp(cache, store);
    const decoded = cache.get(key)!;
    expect(equals(PodSchema, decoded as unknown as Pod, await stored(store))).toBe(true);

    // The writer's reply after the event: too late, the cache keeps what it decoded.
    const late = create(PodSchema, { metadata: { name: "p", namespace: "default", resourceVersion: String(kv.modRevision) }, spec: { nodeName: "elsewhere" } });
    cache.noteWritten(key, kv.modRevision, late as unknown as ApiObject);
    const other = create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { nodeName: "n2" } });
    await store.update(key, encode(podKind, other as unknown as ApiObject), kv.modRevision);
    await caughtUp(cache, store);
    expect((cache.get(key) as unknown as Pod).spec?.nodeName).toBe("n2");
    expect(equals(PodSchema, cache.get(key) as unknown as Pod, await stored(store))).toBe(true);
  });
});
