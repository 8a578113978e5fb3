// Writes that start from the watch cache's object never change it (UpdateStatus, Bind copy what
// they change). Update with a resourceVersion starts from the watch cache's copy when the cache holds that
// version (no storage read: a Lease renewal per node every 10 s, a controller's updates). The write
// stays conditional on the version, so a cache that lags storage can never make an update win
// over a newer write: the caller gets the same conflict a storage read would have given.
import { clone, create, equals, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { LeaseSchema, type Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { keyFor } from "./objects.ts";
import { bindPod, createResourceOps, type ResourceOps } from "./resources.ts";
import type { WatchCache } from "./watchcache.ts";

const leaseKind = kindByName("Lease")!;
let store: Store;
let cached: Map<string, ApiObject>;
let reads: number;
let leases: ResourceOps;
beforeEach(() => {
  const memory = createMemoryStore();
  reads = 0;
  // Counts storage reads of single objects.
  store = { ...memory, get: (key) => (reads++, memory.get(key)) };
  cached = new Map();
  const cache = { kind: leaseKind, get: (key: string) => cached.get(key), noteWritten: () => undefined, noteWriting: () => undefined } as unknown as WatchCache;
  leases = createResourceOps(leaseKind, { store, caches: new Map([["Lease", cache]]) });
});

const lease = (holder: string) => create(LeaseSchema, { metadata: { name: "n1", namespace: "skiff-system" }, spec: { holderIdentity: holder } }) as unknown as ApiObject;
const renew = (from: ApiObject, holder: string) => {
  const next = clone(LeaseSchema, from as unknown as Lease);
  next.spec!.holderIdentity = holder;
  return next as unknown as ApiObject;
};
const keyOf = (o: ApiObject) => keyFor(leaseKind, o.metadata!.namespace, o.metadata!.name);

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the update to fail");
}

describe("update from the watch cache", () => {
  it("reads no storage when the cache holds the version the writer saw", async () => {
    const v1 = await leases.create(lease("a"));
    cached.set(keyOf(v1), v1);
    reads = 0;
    const v2 = await leases.update(renew(v1, "b"));
    expect(reads).toBe(0);
    expect((v2 as unknown as Lease).spec?.holderIdentity).toBe("b");
    expect((await leases.get("skiff-system", "n1")).metadata!.resourceVersion).toBe(v2.metadata!.resourceVersion);
  });

  it("refuses an update from a stale version though the lagging cache still holds that version", async () => {
    const v1 = await leases.create(lease("a"));
    cached.set(keyOf(v1), v1); // the cache has not seen v2 yet
    await leases.update(renew(v1, "b"));
    const err = await failure(leases.update(renew(v1, "c")));
    expect(err.code).toBe(Code.Aborted);
    expect((await leases.get("skiff-system", "n1")) as unknown as Lease).toMatchObject({ spec: { holderIdentity: "b" } });
  });

  it("reads storage when the cache holds another version, and conflicts on a stale one", async () => {
    const v1 = await leases.create(lease("a"));
    const v2 = await leases.update(renew(v1, "b"));
    cached.set(keyOf(v1), v1); // lagging
    reads = 0;
    const v3 = await leases.update(renew(v2, "c"));
    expect(reads).toBe(1);
    expect((v3 as unknown as Lease).spec?.holderIdentity).toBe("c");
    expect((await failure(leases.update(renew(v2, "d")))).code).toBe(Code.Aborted);
  });
});

describe("writes that start from the watch cache's object", () => {
  it("Bind binds a pod stored without a status (an older write), giving it one", async () => {
    const podKind = kindByName("Pod")!;
    const pods = createResourceOps(podKind, { store, caches: new Map() });
    const created = await pods.create(create(PodSchema, { metadata: { name: "bare", namespace: "default" }, spec: { containers: [{ name: "c", image: "busybox" }] } }) as unknown as ApiObject);
    // As an older apiserver could have stored it: no status at all.
    const bare = clone(PodSchema, created as unknown as Pod);
    bare.status = undefined;
    const key = keyFor(podKind, "default", "bare");
    await store.update(key, toBinary(PodSchema, bare), Number(created.metadata!.resourceVersion));
    const stored = (await pods.get("default", "bare")) as unknown as Pod;
    expect(stored.status).toBeUndefined();
    const bound = (await bindPod(pods, store, "default", "bare", "n1", "")) as unknown as Pod;
    expect(bound.spec!.nodeName).toBe("n1");
    expect(bound.status!.conditions.map((c) => c.type)).toEqual(["PodScheduled"]);
  });

  it("UpdateStatus and Bind leave the cached pod exactly as it was (they copy what they change)", async () => {
    const podKind = kindByName("Pod")!;
    const podCache = new Map<string, ApiObject>();
    const cache = { kind: podKind, get: (key: string) => podCache.get(key), noteWritten: () => undefined, noteWriting: () => undefined } as unknown as WatchCache;
    const pods = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
    const created = await pods.create(create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { containers: [{ name: "c", image: "busybox" }] } }) as unknown as ApiObject);
    const key = keyFor(podKind, "default", "p");
    podCache.set(key, created);
    const snapshot = clone(PodSchema, created as unknown as Pod);

    const bound = (await bindPod(pods, store, "default", "p", "n1", "", cache)) as unknown as Pod;
    expect(bound.spec!.nodeName).toBe("n1");
    expect(bound.status!.conditions.map((c) => c.type)).toContain("PodScheduled");
    expect(equals(PodSchema, created as unknown as Pod, snapshot)).toBe(true);

    podCache.set(key, bound as unknown as ApiObject);
    const boundSnapshot = clone(PodSchema, bound);
    const status = clone(PodSchema, bound);
    status.status!.phase = "Running";
    const running = (await pods.updateStatus(status as unknown as ApiObject)) as unknown as Pod;
    expect(running.status!.phase).toBe("Running");
    expect(running.metadata!.resourceVersion).not.toBe(bound.metadata!.resourceVersion);
    expect(equals(PodSchema, bound, boundSnapshot)).toBe(true);
    expect((await pods.get("default", "p")) as unknown as Pod).toMatchObject({ spec: { nodeName: "n1" }, status: { phase: "Running" } });
  });

  it("Update leaves the cached pod as it was when the kind's defaults fill the status it keeps (a phase cleared by UpdateStatus)", async () => {
    const podKind = kindByName("Pod")!;
    const podCache = new Map<string, ApiObject>();
    const cache = { kind: podKind, get: (key: string) => podCache.get(key), noteWritten: () => undefined, noteWriting: () => undefined } as unknown as WatchCache;
    const pods = createResourceOps(podKind, { store, caches: new Map([["Pod", cache]]) });
    const created = (await pods.create(create(PodSchema, { metadata: { name: "p", namespace: "default" }, spec: { containers: [{ name: "c", image: "busybox" }] } }) as unknown as ApiObject)) as unknown as Pod;
    const cleared = clone(PodSchema, created);
    cleared.status!.phase = "";
    const stored = (await pods.updateStatus(cleared as unknown as ApiObject)) as unknown as Pod;
    podCache.set(keyFor(podKind, "default", "p"), stored as unknown as ApiObject);
    const snapshot = clone(PodSchema, stored);

    const relabeled = clone(PodSchema, stored);
    relabeled.metadata!.labels = { app: "web" };
    const updated = (await pods.update(relabeled as unknown as ApiObject)) as unknown as Pod;
    expect(updated.metadata!.labels).toEqual({ app: "web" });
    expect(stored.status!.phase).toBe("");
    expect(equals(PodSchema, stored, snapshot)).toBe(true);
  });
});
