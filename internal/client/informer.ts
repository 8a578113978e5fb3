// Informer: a local, indexed, eventually-consistent copy of one kind, kept current by a reflector
// loop (List, then Watch from the list's resource version), with event handlers for controllers.
// The semantics follow client-go's reflector + indexer + shared informer:
//
//   list ──► replace(cache) ──► diff as add/update/delete ──► handlers
//     ▲                                                          ▲
//     │ OutOfRange (history gone)                                │
//     └──── watch(from last RV) ──► apply event to cache ────────┘
//               ▲          │ stream ended / failed
//               └─backoff──┘ (resume from the newest RV seen, BOOKMARKs included)
//
// Guarantees a controller can rely on:
// - handlers see every change of every object once, in resource-version order, while the watch
//   holds; after a gap that forces a relist they see the difference between what the cache held
//   and the new list (intermediate states in the gap are collapsed — level-triggered);
// - an event at or below the resource version already held for an object is dropped, so a replay
//   after a resume never rolls the cache back or repeats a handler call;
// - the cache is updated before handlers run, and hasSynced() turns true only after every handler
//   registered at that time has seen the initial list as adds.
//
// Handlers run synchronously, in registration order, on the reflector's turn: keep them quick
// (enqueue a key). A handler that throws or rejects is logged; the informer carries on. Objects in
// the cache are shared with every handler and controller: treat them as read-only and
// clone(kind.schema, obj) before changing one.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Transport } from "@connectrpc/connect";
import { kindByName, lookupKind, type ApiObject, type Kind } from "../api/registry.ts";
import { listAllPages } from "./pager.ts";
import { createResourceClient, type ResourceClient, type WatchEvent } from "./resource-client.ts";
import { sleep } from "../util/sleep.ts";
import { createIndexedStore, keyOf, type IndexFunc } from "./store.ts";

export { keyOf, NAMESPACE_INDEX, namespaceIndexFunc, splitKey } from "./store.ts";
export type { IndexFunc } from "./store.ts";

/** The structured-logging subset the informer uses; a pino Logger fits. */
export interface InformerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface InformerOptions<T> {
  /** Only this namespace ("" or absent: all). Ignored for cluster-scoped kinds. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  indexers?: Record<string, IndexFunc<T>>;
  /** Re-deliver onUpdate(obj, obj) for every cached object this often (absent/0: never). */
  resyncMs?: number;
  log?: InformerLogger;
  /** Delay between failed list/watch attempts: doubles from initialMs up to maxMs, with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Items per List page when (re)listing (0 = one List for everything). Default 500. */
  pageSize?: number;
}

export type AddHandler<T> = (obj: T) => unknown;
export type UpdateHandler<T> = (oldObj: T, newObj: T) => unknown;
export type DeleteHandler<T> = (obj: T) => unknown;

export interface Informer<T extends ApiObject = ApiObject> {
  readonly kind: Kind;
  /** Starts the reflector (idempotent). Aborting the signal stops the informer. */
  start(signal?: AbortSignal): void;
  /** Stops the reflector and resync; resolves once the loop has exited. */
  stop(): Promise<void>;
  /** True once the first list has been applied (and every handler has seen it). Stays true. */
  hasSynced(): boolean;
  /** Resolves on sync; rejects if `signal` aborts or the informer stops first. */
  waitForSync(signal?: AbortSignal): Promise<void>;

  /** The object with this key (`namespace/name`, or `name` for cluster-scoped kinds). */
  get(key: string): T | undefined;
  list(): T[];
  listKeys(): string[];
  /** Objects whose index function returned `value`. Throws for an unknown index name. */
  byIndex(indexName: string, value: string): T[];
  /** Keys of the objects whose index function returned `value`. */
  indexKeys(indexName: string, value: string): string[];
  /** Adds indexes (also after start: existing objects are indexed at once). Names must be new. */
  addIndexers(indexers: Record<string, IndexFunc<T>>): void;
  /** The newest resource version seen: from the list, an event or a BOOKMARK ("" before). */
  lastResourceVersion(): string;

  /** Every object already in the cache is replayed to `fn` as an add before this returns. */
  onAdd(fn: AddHandler<T>): () => void;
  onUpdate(fn: UpdateHandler<T>): () => void;
  /** Gets the object's final state (from the watch), or the last one cached (found by a relist). */
  onDelete(fn: DeleteHandler<T>): () => void;
}

/**
 * Orders resource versions: negative, 0 or positive like a comparator. Skiff's are decimal
 * revisions; compared as digit strings so that no size limit applies. undefined when either one
 * is not a revision (then nothing can be said about their order).
 */
export function compareResourceVersions(a: string, b: string): number | undefined {
  const re = /^\d+$/;
  if (!re.test(a) || !re.test(b)) return undefined;
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

const rvOf = (obj: ApiObject | undefined): string => obj?.metadata?.resourceVersion ?? "";
/** a is strictly newer than b (unknown order counts as newer: never drop what we cannot judge). */
const newer = (a: string, b: string): boolean => (compareResourceVersions(a, b) ?? 1) > 0;

const consoleLogger: InformerLogger = {
  debug() {},
  info() {},
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
};

function abortError(reason: string): Error {
  return new DOMException(reason, "AbortError");
}

export function createInformer<T extends ApiObject = ApiObject>(client: ResourceClient<T>, opts: InformerOptions<T> = {}): Informer<T> {
  const kind = client.kind;
  const log = opts.log ?? consoleLogger;
  const namespace = kind.namespaced ? (opts.namespace ?? "") : "";
  const selectors = { labelSelector: opts.labelSelector ?? "", fieldSelector: opts.fieldSelector ?? "" };
  const initialBackoff = opts.backoff?.initialMs ?? 100;
  const maxBackoff = Math.max(initialBackoff, opts.backoff?.maxMs ?? 10_000);
  const ctx = { kind: kind.kind, namespace: namespace || undefined, ...selectors };

  // ---- the indexed cache ----
  const store = createIndexedStore<T>(`informer for ${kind.kind}`, (index, key, err) =>
    log.error({ ...ctx, index, key, err }, "informer: index function failed; object left out of the index"),
  );
  const items = store.items;
  const { put, remove, addIndexers } = store;
  addIndexers(opts.indexers ?? {});

  // ---- handlers ----
  const addHandlers: AddHandler<T>[] = [];
  const updateHandlers: UpdateHandler<T>[] = [];
  const deleteHandlers: DeleteHandler<T>[] = [];

  function call(what: string, obj: T, fn: () => unknown): void {
    const fail = (err: unknown) => log.error({ ...ctx, event: what, key: keyOf(obj), err }, "informer: event handler failed");
    try {
      const r = fn();
      if (r instanceof Promise) r.catch(fail);
    } catch (err) {
      fail(err);
    }
  }
  // Snapshots of the lists: a handler may (un)register handlers while being called.
  const emitAdd = (obj: T) => {
    for (const fn of [...addHandlers]) call("add", obj, () => fn(obj));
  };
  const emitUpdate = (oldObj: T, newObj: T) => {
    for (const fn of [...updateHandlers]) call("update", newObj, () => fn(oldObj, newObj));
  };
  const emitDelete = (obj: T) => {
    for (const fn of [...deleteHandlers]) call("delete", obj, () => fn(obj));
  };

  function register<F>(list: F[], fn: F): () => void {
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  // ---- the reflector ----
  let lastRV = "";
  let synced = false;
  let syncWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  let running: Promise<void> | undefined;
  let stopped = false;
  const abort = new AbortController();
  let resyncTimer: ReturnType<typeof setInterval> | undefined;

  function noteRV(rv: string): void {
    if (rv !== "" && (lastRV === "" || newer(rv, lastRV))) lastRV = rv;
  }

  /** Makes the cache equal to a fresh list, telling handlers the difference. */
  function replace(list: T[], listRV: string): void {
    const fresh = new Map<string, T>();
    for (const obj of list) fresh.set(keyOf(obj), obj);
    // Gone from the list: deleted while we were not watching. Something cached at a version
    // newer than the list itself was written after the list was read: keep it.
    for (const [key, old] of [...items]) {
      if (fresh.has(key) || newer(rvOf(old), listRV)) continue;
      remove(key);
      emitDelete(old);
    }
    for (const [key, obj] of fresh) {
      const old = items.get(key);
      if (!old) {
        put(key, obj);
        emitAdd(obj);
      } else if (old.metadata?.uid && obj.metadata?.uid && old.metadata.uid !== obj.metadata.uid) {
        // Deleted and created again under the same name during the gap: two different objects.
        remove(key);
        emitDelete(old);
        put(key, obj);
        emitAdd(obj);
      } else if (newer(rvOf(obj), rvOf(old))) {
        put(key, obj);
        emitUpdate(old, obj);
      }
    }
    noteRV(listRV);
    if (!synced) {
      synced = true;
      const ws = syncWaiters;
      syncWaiters = [];
      for (const w of ws) w.resolve();
      log.debug({ ...ctx, objects: items.size, resourceVersion: listRV }, "informer: synced");
    }
  }

  /** Applies one watch event; stale and repeated ones (at or below what we hold) are dropped. */
  function apply(ev: WatchEvent<T>): void {
    const obj = ev.object;
    const rv = rvOf(obj);
    if (ev.type === "BOOKMARK") {
      noteRV(rv);
      return;
    }
    if (!obj?.metadata) {
      log.warn({ ...ctx, type: ev.type }, "informer: watch event without an object; ignored");
      return;
    }
    // The stream is ordered: anything older than what we have seen is a replay.
    if (lastRV !== "" && rv !== "" && newer(lastRV, rv)) return;
    const key = keyOf(obj);
    const old = items.get(key);
    if (ev.type === "DELETED") {
      if (old && newer(rv, rvOf(old))) {
        remove(key);
        emitDelete(obj);
      }
    } else if (!old) {
      put(key, obj);
      emitAdd(obj);
    } else if (newer(rv, rvOf(old))) {
      put(key, obj);
      emitUpdate(old, obj);
    }
    noteRV(rv);
  }

  const isOutOfRange = (err: unknown) => ConnectError.from(err).code === Code.OutOfRange;

  async function run(signal: AbortSignal): Promise<void> {
    let needList = true;
    let backoff = initialBackoff;
    let failures = 0;
    const retryAfterFailure = async (what: string, err: unknown) => {
      failures++;
      const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
      const level = failures > 3 ? "warn" : "info";
      log[level]({ ...ctx, err: String(err), resourceVersion: lastRV, retryInMs: delay }, `informer: ${what} failed`);
      await sleep(delay, signal);
      backoff = Math.min(backoff * 2, maxBackoff);
    };

    while (!signal.aborted) {
      if (needList) {
        try {
          const res = await listAllPages(client, namespace, { ...selectors, pageSize: opts.pageSize, signal });
          if (signal.aborted) return;
          replace(res.items, res.resourceVersion);
          needList = false;
        } catch (err) {
          if (signal.aborted) return;
          await retryAfterFailure("list", err);
          continue;
        }
      }
      let progressed = false;
      try {
        const stream = client.watch(namespace, { ...selectors, resourceVersion: lastRV, signal });
        for await (const ev of stream) {
          if (signal.aborted) return;
          apply(ev);
          if (!progressed) {
            progressed = true;
            backoff = initialBackoff;
            failures = 0;
          }
        }
        if (signal.aborted) return;
        log.debug({ ...ctx, resourceVersion: lastRV }, "informer: watch ended; resuming");
        // A stream that ends cleanly without delivering anything would spin: back off then.
        if (!progressed) await retryAfterFailure("watch", new Error("stream ended with no events"));
      } catch (err) {
        if (signal.aborted) return;
        if (isOutOfRange(err)) {
          // The server no longer has the events after our resource version: only a list
          // can tell us the truth now.
          log.info({ ...ctx, resourceVersion: lastRV, err: String(err) }, "informer: resource version too old; relisting");
          needList = true;
          if (!progressed) await retryAfterFailure("watch", err);
          continue;
        }
        await retryAfterFailure("watch", err);
      }
    }
  }

  function resync(): void {
    if (!synced) return;
    for (const obj of [...items.values()]) emitUpdate(obj, obj);
  }

  const informer: Informer<T> = {
    kind,
    start(signal) {
      if (stopped) throw new Error(`informer for ${kind.kind} was stopped: create a new one`);
      if (signal) {
        if (signal.aborted) {
          void informer.stop();
          return;
        }
        signal.addEventListener("abort", () => void informer.stop(), { once: true });
      }
      if (running) return;
      running = run(abort.signal).catch((err) => log.error({ ...ctx, err }, "informer: reflector crashed"));
      if (opts.resyncMs && opts.resyncMs > 0) {
        resyncTimer = setInterval(resync, opts.resyncMs);
        resyncTimer.unref?.();
      }
    },
    async stop() {
      stopped = true;
      abort.abort();
      clearInterval(resyncTimer);
      const ws = syncWaiters;
      syncWaiters = [];
      for (const w of ws) w.reject(abortError(`informer for ${kind.kind} stopped before it synced`));
      await running;
    },
    hasSynced: () => synced,
    waitForSync(signal) {
      if (synced) return Promise.resolve();
      if (stopped) return Promise.reject(abortError(`informer for ${kind.kind} stopped before it synced`));
      if (signal?.aborted) return Promise.reject(signal.reason);
      return new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          syncWaiters = syncWaiters.filter((w) => w !== waiter);
          reject(signal!.reason);
        };
        const waiter = {
          resolve: () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          },
          reject: (err: unknown) => {
            signal?.removeEventListener("abort", onAbort);
            reject(err);
          },
        };
        syncWaiters.push(waiter);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },

    get: (key) => items.get(key),
    list: () => [...items.values()],
    listKeys: () => [...items.keys()],
    indexKeys: store.indexKeys,
    byIndex(indexName, value) {
      return informer.indexKeys(indexName, value).map((k) => items.get(k)!);
    },
    addIndexers,
    lastResourceVersion: () => lastRV,

    onAdd(fn) {
      const off = register(addHandlers, fn);
      for (const obj of [...items.values()]) call("add", obj, () => fn(obj));
      return off;
    },
    onUpdate: (fn) => register(updateHandlers, fn),
    onDelete: (fn) => register(deleteHandlers, fn),
  };
  return informer;
}

export interface SharedInformerFactoryOptions {
  /** Every informer watches only this namespace (cluster-scoped kinds: all). */
  namespace?: string;
  resyncMs?: number;
  log?: InformerLogger;
  backoff?: InformerOptions<ApiObject>["backoff"];
  /** Items per List page of every informer (0 = one List for everything). Default 500. */
  pageSize?: number;
}

export interface SharedInformerFactory {
  /**
   * The one informer for a kind ("Pod"; "pods" and "po" name the same one), created on first use.
   * Informers asked for after start() start at once.
   */
  informerFor<T extends ApiObject = ApiObject>(kindName: string): Informer<T>;
  /** Starts every informer asked for so far (and, from now on, every new one). */
  start(signal?: AbortSignal): void;
  /** Resolves once every informer asked for so far has synced. */
  waitForSync(signal?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

export function createSharedInformerFactory(transport: Transport, opts: SharedInformerFactoryOptions = {}): SharedInformerFactory {
  const informers = new Map<string, Informer<any>>();
  let started = false;
  let startSignal: AbortSignal | undefined;
  return {
    informerFor<T extends ApiObject = ApiObject>(kindName: string): Informer<T> {
      const kind = kindByName(kindName) ?? lookupKind(kindName);
      if (!kind) throw new Error(`unknown kind "${kindName}"`);
      let inf = informers.get(kind.kind);
      if (!inf) {
        inf = createInformer<T>(createResourceClient<T>(transport, kind), {
          namespace: opts.namespace,
          resyncMs: opts.resyncMs,
          log: opts.log,
          backoff: opts.backoff,
          pageSize: opts.pageSize,
        });
        informers.set(kind.kind, inf);
        if (started) inf.start(startSignal);
      }
      return inf as Informer<T>;
    },
    start(signal) {
      started = true;
      startSignal = signal;
      for (const inf of informers.values()) inf.start(signal);
    },
    async waitForSync(signal) {
      await Promise.all([...informers.values()].map((inf) => inf.waitForSync(signal)));
    },
    async stop() {
      await Promise.all([...informers.values()].map((inf) => inf.stop()));
    },
  };
}
