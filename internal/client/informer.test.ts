import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions, type Transport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName } from "../api/registry.ts";
import { startApiServer, type ApiServer, type ApiServerOptions } from "../apiserver/server.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { startCuttableProxy, type CuttableProxy } from "../../test/client/tcp-proxy.ts";
import {
  compareResourceVersions,
  createInformer,
  createSharedInformerFactory,
  keyOf,
  NAMESPACE_INDEX,
  namespaceIndexFunc,
  splitKey,
  type Informer,
  type InformerLogger,
  type InformerOptions,
} from "./informer.ts";
import { createResourceClient, type ResourceClient, type WatchEvent, type WatchOptions } from "./resource-client.ts";
import { createApiTransport } from "./transport.ts";
import { adminCredentials, testPki } from "../pki/testing.ts";

// ---------------------------------------------------------------------------------------------
// Harness: a real apiserver on an in-memory store, clients over gRPC, and a recorder of what
// handlers saw, in the same shape as a log of the writes made, so the two can be compared.

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function startServer(opts: Partial<ApiServerOptions> = {}, store: Store = createMemoryStore()) {
  let server = await startApiServer({ tls: (await testPki()).serving, store, port: 0, heartbeatMs: 200, ...opts });
  const state = {
    store,
    get server(): ApiServer {
      return server;
    },
    async restart() {
      const port = server.port;
      await server.close();
      server = await startApiServer({ tls: (await testPki()).serving, store, heartbeatMs: 200, ...opts, port });
    },
  };
  cleanups.push(() => server.close());
  return state;
}

function transportFor(url: string): Transport {
  return createApiTransport(url, adminCredentials());
}

/** Counts successful lists and watch calls, and remembers the version each watch started from. */
function counting<T extends ConfigMap | Pod>(client: ResourceClient<T>) {
  const calls = { lists: 0, watchesFrom: [] as string[] };
  const wrapped: ResourceClient<T> = {
    ...client,
    async list(ns, o) {
      const res = await client.list(ns, o);
      calls.lists++;
      return res;
    },
    watch(ns, o) {
      calls.watchesFrom.push(o?.resourceVersion ?? "");
      return client.watch(ns, o);
    },
  };
  return { client: wrapped, calls };
}

function capturingLog() {
  const entries: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg: string) => void entries.push({ level, msg, obj });
  const log: InformerLogger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { log, entries };
}

/** "ADDED default/a 12": one line per event, the same shape for writes and for handler calls. */
type Line = string;
const line = (type: string, obj: { metadata?: { namespace?: string; name?: string; resourceVersion?: string } }): Line =>
  `${type} ${keyOf(obj as ConfigMap)} ${obj.metadata?.resourceVersion}`;

function record<T extends ConfigMap | Pod>(inf: Informer<T>) {
  const seen: Line[] = [];
  inf.onAdd((o) => void seen.push(line("ADDED", o)));
  inf.onUpdate((old, o) => {
    // Handlers get the previous state, so its version must be older (a throw here would only be logged).
    const ok = (compareResourceVersions(o.metadata!.resourceVersion, old.metadata!.resourceVersion) ?? 0) > 0;
    seen.push(ok ? line("MODIFIED", o) : `MODIFIED-FROM-NEWER ${line("", old)}`);
  });
  inf.onDelete((o) => void seen.push(line("DELETED", o)));
  return seen;
}

async function eventually(check: () => unknown, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cm(name: string, data: Record<string, string> = {}, labels: Record<string, string> = {}, namespace = "default"): ConfigMap {
  return create(ConfigMapSchema, { metadata: { name, namespace, labels }, data });
}

/** Writes ConfigMaps and logs every write as the event a watcher should see. */
function writer(client: ResourceClient<ConfigMap>) {
  const log: Line[] = [];
  return {
    log,
    async create(name: string, data: Record<string, string> = {}, labels: Record<string, string> = {}) {
      const o = await client.create(cm(name, data, labels));
      log.push(line("ADDED", o));
      return o;
    },
    async update(name: string, data: Record<string, string>) {
      const cur = await client.get("default", name);
      cur.data = data;
      const o = await client.update(cur);
      log.push(line("MODIFIED", o));
      return o;
    },
    async remove(name: string) {
      const { object } = await client.delete("default", name);
      log.push(line("DELETED", object));
      return object;
    },
  };
}

const fast: InformerOptions<any>["backoff"] = { initialMs: 20, maxMs: 200 };

async function setup(serverOpts: Partial<ApiServerOptions> = {}, via: "direct" | "proxy" = "direct") {
  const srv = await startServer(serverOpts);
  const api = createResourceClient<ConfigMap>(transportFor(srv.server.url), "ConfigMap");
  let proxy: CuttableProxy | undefined;
  if (via === "proxy") {
    proxy = await startCuttableProxy(srv.server.url);
    cleanups.push(() => proxy!.close());
  }
  const counted = counting(createResourceClient<ConfigMap>(transportFor(proxy?.url ?? srv.server.url), "ConfigMap"));
  const { log, entries } = capturingLog();
  const make = (opts: InformerOptions<ConfigMap> = {}) => {
    const inf = createInformer(counted.client, { log, backoff: fast, ...opts });
    cleanups.push(() => inf.stop());
    return inf;
  };
  // The apiserver sends no GOAWAY when it closes, so the writer's first call after a restart can
  // fail with Canceled on the dead connection: warm its transport up with an idempotent call.
  const restart = async () => {
    await srv.restart();
    await eventually(async () => void (await api.list("default")), 5000);
  };
  return { srv, restart, api, proxy, calls: counted.calls, logs: entries, make, w: writer(api) };
}

// ---------------------------------------------------------------------------------------------

describe("keys and resource versions", () => {
  it("keys namespaced objects as namespace/name and cluster-scoped ones as name", () => {
    expect(keyOf(cm("a"))).toBe("default/a");
    expect(keyOf(create(NamespaceSchema, { metadata: { name: "prod" } }))).toBe("prod");
    expect(splitKey("default/a")).toEqual({ namespace: "default", name: "a" });
    expect(splitKey("prod")).toEqual({ namespace: "", name: "prod" });
  });

  it("orders resource versions numerically, whatever their length", () => {
    expect(compareResourceVersions("9", "10")).toBeLessThan(0);
    expect(compareResourceVersions("100", "99")).toBeGreaterThan(0);
    expect(compareResourceVersions("42", "42")).toBe(0);
    expect(compareResourceVersions("123456789012345678901234", "123456789012345678901233")).toBeGreaterThan(0);
    expect(compareResourceVersions("abc", "1")).toBeUndefined();
  });
});

describe("informer against an apiserver", () => {
  it("lists the current objects, tells handlers, and only then reports synced", async () => {
    const { make, w, calls } = await setup();
    await w.create("a", { v: "1" });
    await w.create("b");
    const last = await w.create("c");

    const inf = make();
    const addsAtSync: number[] = [];
    const seen: string[] = [];
    inf.onAdd((o) => void seen.push(keyOf(o)));
    expect(inf.hasSynced()).toBe(false);
    inf.start();
    const synced = inf.waitForSync().then(() => addsAtSync.push(seen.length));
    expect(inf.hasSynced()).toBe(false);
    await synced;

    expect(inf.hasSynced()).toBe(true);
    expect(addsAtSync).toEqual([3]); // every initial add was delivered before waitForSync resolved
    expect(seen.sort()).toEqual(["default/a", "default/b", "default/c"]);
    expect(inf.listKeys().sort()).toEqual(["default/a", "default/b", "default/c"]);
    expect(inf.get("default/a")?.data).toEqual({ v: "1" });
    expect(inf.get("default/zzz")).toBeUndefined();
    expect(compareResourceVersions(inf.lastResourceVersion(), last.metadata!.resourceVersion)).toBeGreaterThanOrEqual(0);
    expect(calls.lists).toBe(1);
    expect(calls.watchesFrom[0]).toBe(inf.lastResourceVersion()); // watch starts where the list ended
    await inf.waitForSync(); // resolves at once from now on
  });

  it("delivers adds, updates (with the old object) and deletes in write order", async () => {
    const { make, w } = await setup();
    await w.create("pre");
    const inf = make();
    inf.start();
    await inf.waitForSync();
    const seen = record(inf); // registered after sync: "pre" is replayed as an add
    const olds: string[] = [];
    inf.onUpdate((old) => void olds.push(old.data.v ?? ""));
    expect(seen).toEqual([w.log[0]]);

    await w.create("a", { v: "1" });
    await w.update("a", { v: "2" });
    await w.update("pre", { v: "x" });
    await w.update("a", { v: "3" });
    await w.remove("pre");
    await w.create("b");
    await w.remove("a");

    await eventually(() => expect(seen).toEqual(w.log));
    expect(olds).toEqual(["1", "", "2"]);
    expect(inf.listKeys()).toEqual(["default/b"]);
    // The delete handler got the object's final state (stamped with the deletion's version).
    expect(seen.at(-1)).toMatch(/^DELETED default\/a \d+$/);
  });

  it("replays the cache to handlers registered late, and unsubscribes", async () => {
    const { make, w } = await setup();
    await w.create("a");
    await w.create("b");
    const inf = make();
    inf.start();
    await inf.waitForSync();

    const late: string[] = [];
    const off = inf.onAdd((o) => void late.push(keyOf(o)));
    expect(late.sort()).toEqual(["default/a", "default/b"]); // replayed before onAdd returned
    off();
    const other: string[] = [];
    inf.onAdd((o) => void other.push(keyOf(o)));
    await w.create("c");
    await eventually(() => expect(other).toContain("default/c"));
    expect(late).toHaveLength(2);
  });

  it("logs a failing handler and keeps delivering to it and to the others", async () => {
    const { make, w, logs } = await setup();
    const inf = make();
    const good: string[] = [];
    inf.onAdd((o) => {
      if (o.metadata?.name === "boom") throw new Error("handler bug");
    });
    inf.onAdd(async (o) => {
      if (o.metadata?.name === "boom") throw new Error("async handler bug");
    });
    inf.onAdd((o) => void good.push(keyOf(o)));
    inf.start();
    await inf.waitForSync();
    await w.create("boom");
    await w.create("after");
    await eventually(() => expect(good).toEqual(["default/boom", "default/after"]));
    await eventually(() => expect(logs.filter((e) => e.level === "error")).toHaveLength(2));
    expect(logs.filter((e) => e.level === "error").map((e) => String((e.obj as { err: Error }).err.message)).sort()).toEqual([
      "async handler bug",
      "handler bug",
    ]);
    expect(inf.get("default/after")).toBeDefined();
  });

  it("maintains indexes: pods by node, re-filed on change, added after start", async () => {
    const srv = await startServer();
    const transport = transportFor(srv.server.url);
    const pods = createResourceClient<Pod>(transport, "Pod");
    const pod = (name: string, nodeName: string) =>
      create(PodSchema, { metadata: { name, namespace: "default" }, spec: { nodeName, containers: [{ name: "c", image: "busybox" }] } });
    await pods.create(pod("p1", "n1"));
    await pods.create(pod("p2", "n1"));
    await pods.create(pod("p3", "n2"));
    await pods.create(pod("p4", ""));

    const inf = createInformer(pods, {
      log: capturingLog().log,
      indexers: { byNode: (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []) },
    });
    cleanups.push(() => inf.stop());
    inf.start();
    await inf.waitForSync();
    const names = (ps: Pod[]) => ps.map((p) => p.metadata!.name).sort();
    expect(names(inf.byIndex("byNode", "n1"))).toEqual(["p1", "p2"]);
    expect(names(inf.byIndex("byNode", "n2"))).toEqual(["p3"]);
    expect(inf.byIndex("byNode", "n3")).toEqual([]);
    expect(() => inf.byIndex("nope", "x")).toThrow(/no index named "nope"/);

    // Binding a pending pod moves it into its node's index; a deleted pod leaves it.
    const p4 = await pods.get("default", "p4");
    p4.spec!.nodeName = "n2";
    await pods.update(p4);
    await pods.delete("default", "p1", { gracePeriodSeconds: 0n });
    await eventually(() => {
      expect(names(inf.byIndex("byNode", "n2"))).toEqual(["p3", "p4"]);
      expect(names(inf.byIndex("byNode", "n1"))).toEqual(["p2"]);
    });

    inf.addIndexers({ [NAMESPACE_INDEX]: namespaceIndexFunc });
    expect(names(inf.byIndex(NAMESPACE_INDEX, "default"))).toEqual(["p2", "p3", "p4"]);
    expect(() => inf.addIndexers({ byNode: () => [] })).toThrow(/already exists/);
  });

  it("honours namespace and label selectors: an object relabelled out of the selector is deleted", async () => {
    const { srv, make, api } = await setup();
    await createResourceClient(transportFor(srv.server.url), "Namespace").create(create(NamespaceSchema, { metadata: { name: "other" } }));
    await api.create(cm("web", {}, { app: "web" }));
    await api.create(cm("db", {}, { app: "db" }));
    await api.create(cm("web", {}, { app: "web" }, "other"));

    const inf = make({ namespace: "default", labelSelector: "app=web" });
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();
    expect(inf.listKeys()).toEqual(["default/web"]);

    const web = await api.get("default", "web");
    web.metadata!.labels = { app: "retired" };
    const moved = await api.update(web);
    await api.create(cm("web2", {}, { app: "web" }, "other")); // other namespace: not ours
    const added = await api.create(cm("web3", {}, { app: "web" }));
    await eventually(() => expect(inf.listKeys()).toEqual(["default/web3"]));
    expect(seen.slice(1)).toEqual([line("DELETED", moved), line("ADDED", added)]);
  });

  it("re-delivers every object as an update on each resync", async () => {
    const { make, w } = await setup();
    await w.create("a");
    await w.create("b");
    const inf = make({ resyncMs: 50 });
    const resynced: string[] = [];
    inf.onUpdate((old, o) => {
      expect(old).toBe(o);
      resynced.push(keyOf(o));
    });
    inf.start();
    await inf.waitForSync();
    await eventually(() => expect(resynced.filter((k) => k === "default/a").length).toBeGreaterThanOrEqual(2));
    expect(resynced.filter((k) => k === "default/b").length).toBeGreaterThanOrEqual(2);
    await inf.stop();
    const n = resynced.length;
    await sleep(150);
    expect(resynced).toHaveLength(n); // stop() ends resync
  });

  it("waitForSync rejects on abort, and when the informer stops before syncing", async () => {
    const { proxy, make } = await setup({}, "proxy");
    proxy!.block(); // the list can never succeed
    const inf = make();
    inf.start();
    const ac = new AbortController();
    const aborted = inf.waitForSync(ac.signal);
    const stopped = inf.waitForSync();
    ac.abort(new Error("gave up"));
    await expect(aborted).rejects.toThrow("gave up");
    await inf.stop();
    await expect(stopped).rejects.toThrow(/stopped before it synced/);
    expect(inf.hasSynced()).toBe(false);
    expect(() => inf.start()).toThrow(/was stopped/);
  });

  it("resumes a cut watch from its last resource version without losing or repeating an event", async () => {
    const { make, w, proxy, calls } = await setup({}, "proxy");
    for (let i = 0; i < 5; i++) await w.create(`obj-${i}`, { n: "0" });
    const inf = make();
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();
    const initial = w.log.length;
    expect(seen.slice().sort()).toEqual(w.log.slice().sort());

    // A stream of writes; the informer's connection is cut again and again in the middle of it.
    let cuts = 0;
    for (let i = 1; i <= 300; i++) {
      const name = `obj-${i % 7}`;
      if (i % 50 === 0) await w.remove(`obj-${(i / 50) % 5}`).catch(() => undefined);
      else if (!(await w.update(name, { n: String(i) }).catch(() => undefined))) await w.create(name, { n: String(i) });
      if (i % 25 === 0) {
        proxy!.cut();
        cuts++;
      }
      if (i % 60 === 0) await sleep(30); // let some cuts land while the informer is reconnecting
    }

    await eventually(() => expect(seen.length).toBeGreaterThanOrEqual(w.log.length));
    await sleep(300); // time for a duplicate to show up, if one were coming
    expect(seen.slice(initial)).toEqual(w.log.slice(initial)); // every write, once, in order
    expect(calls.lists).toBe(1); // resumed by watching, never by relisting
    expect(calls.watchesFrom.length).toBeGreaterThan(cuts / 2);
    expect(proxy!.connections()).toBeGreaterThan(1);
    expect(inf.lastResourceVersion()).toBe(w.log.at(-1)!.split(" ")[2]);
  });

  it("resumes across an apiserver restart on the same store and port", async () => {
    const { restart, make, w, calls } = await setup();
    const inf = make();
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();

    for (let i = 0; i < 20; i++) await w.create(`before-${String(i).padStart(3, "0")}`);
    await w.update("before-000", { v: "1" });
    await eventually(() => expect(seen).toEqual(w.log));
    await restart();
    for (let i = 0; i < 20; i++) await w.update("before-000", { v: String(i + 2) });
    await w.remove("before-001");
    await eventually(() => expect(seen.length).toBeGreaterThanOrEqual(w.log.length));
    await sleep(200);
    expect(seen).toEqual(w.log);
    expect(calls.lists).toBe(1); // the new server had the history it needed: no relist
    expect(calls.watchesFrom.length).toBeGreaterThan(1);
  });

  it("after a restart while it was cut off, relists and tells handlers exactly what changed", async () => {
    const { restart, make, w, proxy, calls } = await setup({}, "proxy");
    for (let i = 0; i < 10; i++) await w.create(`obj-${String(i).padStart(3, "0")}`);
    const inf = make();
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();
    await eventually(() => expect(seen.length).toBe(10));

    // The informer is away while writes happen and the apiserver restarts: the new server's watch
    // cache starts after those writes, so it cannot replay them and the informer must relist.
    proxy!.block();
    await sleep(50);
    const gap = w.log.length;
    for (let i = 10; i < 30; i++) await w.create(`obj-${String(i).padStart(3, "0")}`);
    await w.update("obj-000", { v: "1" });
    const last = await w.update("obj-000", { v: "2" });
    await w.remove("obj-001");
    await restart();
    seen.length = 0;
    proxy!.unblock();
    for (let i = 30; i < 40; i++) await w.create(`obj-${String(i).padStart(3, "0")}`);

    await eventually(() => expect(inf.listKeys()).toHaveLength(39));
    await sleep(200);
    expect(calls.lists).toBe(2);
    // The relist reports the gap as its net effect (one update for two; a delete carrying the last
    // state the informer knew), then the watch goes on.
    const relisted = [w.log[1].replace("ADDED", "DELETED"), line("MODIFIED", last), ...w.log.slice(gap, gap + 20)];
    expect(seen.slice(0, 22).sort()).toEqual(relisted.sort());
    expect(seen.slice(0, 22).filter((l) => l.startsWith("ADDED"))).toEqual(w.log.slice(gap, gap + 20)); // in order
    expect(seen.slice(22)).toEqual(w.log.slice(gap + 23));
    expect(inf.get("default/obj-000")?.data).toEqual({ v: "2" });
  });

  it("relists after a compaction lost its place, and tells handlers exactly what changed in the gap", async () => {
    const { srv, make, w, api, proxy, calls, logs } = await setup({ watchCacheSize: 10 }, "proxy");
    for (const n of ["keep-1", "keep-2", "mod-1", "mod-2", "del-1", "del-2", "again"]) await w.create(n, { v: "0" });
    const oldAgain = await api.get("default", "again");
    const inf = make();
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();
    expect(seen).toHaveLength(7);
    const rvBefore = inf.lastResourceVersion();

    // Disconnect the informer, then change things well beyond what the server keeps for resumes.
    proxy!.block();
    await sleep(50);
    for (let i = 1; i <= 40; i++) await w.update("mod-1", { v: String(i) });
    await w.update("mod-2", { v: "x" });
    await w.remove("del-1");
    await w.remove("del-2");
    await w.remove("again");
    await w.create("again", { v: "new" }); // same name, a different object (new uid)
    await w.create("new-1");
    await w.create("new-2");
    const compactedAt = await srv.server.compact();
    expect(compareResourceVersions(String(compactedAt), rvBefore)).toBeGreaterThan(0);

    seen.length = 0;
    proxy!.unblock();
    const truth = async () => (await api.list("default")).items.map((o) => `${keyOf(o)} ${o.metadata!.resourceVersion}`).sort();
    const want = await truth();
    await eventually(() => expect(inf.list().map((o) => `${keyOf(o)} ${o.metadata!.resourceVersion}`).sort()).toEqual(want));
    await sleep(200);

    expect(calls.lists).toBe(2); // the resume from rvBefore was refused, so it listed again
    expect(calls.watchesFrom).toContain(rvBefore);
    expect(logs.some((e) => /too old; relisting/.test(e.msg))).toBe(true);
    const now = (n: string) => inf.get(`default/${n}`)!;
    expect(seen.slice().sort()).toEqual(
      [
        `DELETED default/del-1 ${w.log.find((l) => l.startsWith("ADDED default/del-1"))!.split(" ")[2]}`,
        `DELETED default/del-2 ${w.log.find((l) => l.startsWith("ADDED default/del-2"))!.split(" ")[2]}`,
        line("DELETED", oldAgain),
        line("ADDED", now("again")),
        line("MODIFIED", now("mod-1")), // forty updates in the gap: one update to the final state
        line("MODIFIED", now("mod-2")),
        line("ADDED", now("new-1")),
        line("ADDED", now("new-2")),
      ].sort(),
    );
    // The old "again" is deleted before the new one is added.
    expect(seen.indexOf(line("DELETED", oldAgain))).toBeLessThan(seen.indexOf(line("ADDED", now("again"))));
    expect(now("again").data).toEqual({ v: "new" });

    // And it carries on watching from the new list.
    await w.update("keep-1", { v: "later" });
    await eventually(() => expect(inf.get("default/keep-1")?.data).toEqual({ v: "later" }));
  });
});

// ---------------------------------------------------------------------------------------------
// A scripted client, to put exactly the events we want on the wire (duplicates, replays, errors).

/** A stream that fails (when `err` settles) without yielding anything. */
function failing(err: unknown): AsyncIterable<WatchEvent<ConfigMap>> {
  return { [Symbol.asyncIterator]: () => ({ next: async () => Promise.reject(await err) }) };
}

type Script = { list: () => { items: ConfigMap[]; resourceVersion: string }; watches: ((from: string) => AsyncIterable<WatchEvent<ConfigMap>>)[] };

function scripted(script: Script) {
  const real = createResourceClient<ConfigMap>(transportFor("http://127.0.0.1:1"), "ConfigMap");
  const calls = { lists: 0, watchesFrom: [] as string[] };
  const client: ResourceClient<ConfigMap> = {
    ...real,
    async list() {
      calls.lists++;
      return script.list();
    },
    watch(_ns: string, o?: WatchOptions & CallOptions) {
      const from = o?.resourceVersion ?? "";
      calls.watchesFrom.push(from);
      const next = script.watches.shift();
      if (next) return next(from);
      // Out of script: a quiet stream that only ends when the informer stops.
      return failing(new Promise((_, reject) => o?.signal?.addEventListener("abort", () => reject(new ConnectError("aborted", Code.Canceled)))));
    },
  };
  return { client, calls };
}

const obj = (name: string, rv: number, v = String(rv), uid = `uid-${name}`) =>
  create(ConfigMapSchema, { metadata: { name, namespace: "default", resourceVersion: String(rv), uid }, data: { v } });
const ev = (type: WatchEvent<ConfigMap>["type"], o: ConfigMap): WatchEvent<ConfigMap> => ({ type, object: o });
const bookmark = (rv: number) => ev("BOOKMARK", create(ConfigMapSchema, { metadata: { resourceVersion: String(rv) } }));

describe("informer event handling (scripted server)", () => {
  it("drops duplicate and older events instead of rolling the cache back, and resumes from the newest version", async () => {
    const { client, calls } = scripted({
      list: () => ({ items: [obj("a", 5), obj("b", 6)], resourceVersion: "10" }),
      watches: [
        async function* () {
          yield ev("MODIFIED", obj("a", 12));
          yield ev("MODIFIED", obj("a", 12)); // duplicate
          yield ev("MODIFIED", obj("a", 11)); // older than what we hold
          yield ev("ADDED", obj("b", 6)); // replay of the listed state
          yield ev("DELETED", obj("b", 13));
          yield ev("DELETED", obj("b", 13)); // duplicate delete
          yield ev("ADDED", obj("c", 14));
          yield bookmark(20);
          throw new ConnectError("connection reset", Code.Unavailable);
        },
        async function* () {
          // A server that replays from too early: nothing here may reach handlers again.
          yield ev("MODIFIED", obj("a", 12));
          yield ev("ADDED", obj("c", 14));
          yield ev("MODIFIED", obj("b", 9)); // b was deleted at 13: must not come back
          yield ev("MODIFIED", obj("c", 21));
        },
      ],
    });
    const inf = createInformer(client, { log: capturingLog().log, backoff: fast });
    const seen = record(inf);
    inf.start();
    await eventually(() => expect(inf.lastResourceVersion()).toBe("21"));
    await inf.stop();

    expect(seen).toEqual([
      "ADDED default/a 5",
      "ADDED default/b 6",
      "MODIFIED default/a 12",
      "DELETED default/b 13",
      "ADDED default/c 14",
      "MODIFIED default/c 21",
    ]);
    expect(inf.list().map((o) => line("", o).trim())).toEqual(["default/a 12", "default/c 21"]);
    expect(calls.lists).toBe(1);
    expect(calls.watchesFrom.slice(0, 3)).toEqual(["10", "20", "21"]); // BOOKMARK advanced the resume point
  });

  it("on OutOfRange relists and reports the difference: deletes, replaced objects, updates, adds", async () => {
    const lists = [
      { items: [obj("a", 5), obj("b", 6), obj("same", 7), obj("re", 8)], resourceVersion: "10" },
      { items: [obj("a", 30), obj("c", 31), obj("same", 7), obj("re", 29, "new", "uid-re-2")], resourceVersion: "40" },
    ];
    const { client, calls } = scripted({
      list: () => lists.shift()!,
      watches: [
        () => failing(new ConnectError("too old", Code.OutOfRange)),
      ],
    });
    const { log, entries } = capturingLog();
    const inf = createInformer(client, { log, backoff: fast });
    const seen = record(inf);
    inf.start();
    await inf.waitForSync();
    seen.length = 0;
    await eventually(() => expect(calls.lists).toBe(2));
    await eventually(() => expect(calls.watchesFrom).toContain("40"));
    await inf.stop();

    expect(seen).toEqual([
      "DELETED default/b 6",
      "MODIFIED default/a 30",
      "ADDED default/c 31",
      "DELETED default/re 8",
      "ADDED default/re 29",
    ]);
    expect(calls.watchesFrom.slice(0, 2)).toEqual(["10", "40"]);
    expect(entries.some((e) => /relisting/.test(e.msg))).toBe(true);
  });

  it("retries a failing list with backoff and syncs once it succeeds", async () => {
    let failures = 2;
    const { client, calls } = scripted({
      list: () => {
        if (failures-- > 0) throw new ConnectError("etcd down", Code.Unavailable);
        return { items: [obj("a", 5)], resourceVersion: "5" };
      },
      watches: [],
    });
    const inf = createInformer(client, { log: capturingLog().log, backoff: fast });
    inf.start();
    await inf.waitForSync();
    expect(calls.lists).toBe(3);
    expect(inf.listKeys()).toEqual(["default/a"]);
    await inf.stop();
  });
});

describe("shared informer factory", () => {
  it("hands every caller the same informer per kind and starts late ones", async () => {
    const srv = await startServer();
    const transport = transportFor(srv.server.url);
    const api = createResourceClient<ConfigMap>(transport, "ConfigMap");
    await api.create(cm("a"));
    const factory = createSharedInformerFactory(transport, { log: capturingLog().log, backoff: fast });
    cleanups.push(() => factory.stop());

    const cms = factory.informerFor<ConfigMap>("ConfigMap");
    expect(factory.informerFor("configmaps")).toBe(cms);
    expect(factory.informerFor("cm")).toBe(cms);
    expect(cms.kind).toBe(kindByName("ConfigMap"));
    expect(() => factory.informerFor("Gizmo")).toThrow(/unknown kind/);

    const ac = new AbortController();
    factory.start(ac.signal);
    await factory.waitForSync();
    expect(cms.listKeys()).toEqual(["default/a"]);

    const nss = factory.informerFor("Namespace"); // after start: started at once
    await nss.waitForSync();
    expect(nss.listKeys()).toContain("default");

    ac.abort(); // stops every informer
    await eventually(() => expect(() => cms.start()).toThrow(/was stopped/));
  });
});
