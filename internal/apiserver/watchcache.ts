// The watch cache: ONE storage watch per kind, decoded once, fanned out to every client watch
// with its selectors applied here. It keeps the current objects (for the initial state of a
// watch) and a bounded window of recent events (for resumes); older resumes get OUT_OF_RANGE and
// the client relists, as with Kubernetes' cacher.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ApiObject, Kind } from "../api/registry.ts";
import { UndecryptableError } from "../encryption/providers.ts";
import { StoreError, type Store, type WatchEvent } from "../storage/store.ts";
import { decode, prefixFor } from "./objects.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface CacheEvent {
  type: EventType;
  obj: ApiObject;
  /** The object before this event (MODIFIED and DELETED). */
  prev?: ApiObject;
  revision: number;
}

export interface WatchOut {
  type: EventType | "BOOKMARK";
  obj?: ApiObject;
  revision: number;
}

export interface ObjectFilter {
  (obj: ApiObject): boolean;
  /** Set when the filter passes only objects whose kind.watchIndex field has this value. */
  indexValue?: string;
}

export interface CacheWatcher {
  /**
   * Waits for the next events, or returns [] after timeoutMs (time for a heartbeat); throws a
   * ConnectError when the watch must end (too slow, too old, closed).
   */
  next(timeoutMs: number): Promise<WatchOut[]>;
  /** The newest revision this watcher has seen (for heartbeats). */
  revision(): number;
  close(): void;
}

export interface WatchCache {
  readonly kind: Kind;
  /** Resolves once the first list is in. */
  start(): Promise<void>;
  stop(): void;
  revision(): number;
  get(key: string): ApiObject | undefined;
  /** Every object the cache holds now. */
  list(): ApiObject[];
  /**
   * Calls `listener` synchronously with every event as the cache applies it, and with undefined
   * after a relist (anything may have changed): indexes kept beside the cache (authorizers) stay
   * exactly as current as the cache. Returns the unsubscribe function.
   */
  onChange(listener: (ev: CacheEvent | undefined) => void): () => void;
  /** Every event after revision `from` that passes the filter; OUT_OF_RANGE if history lost some. */
  watch(from: number, filter: ObjectFilter): CacheWatcher;
  /** Drops history at or below a revision (after storage compaction). */
  compact(revision: number): void;
  watcherCount(): number;
}

export interface WatchCacheOptions {
  /** Events kept for resumes. */
  historySize?: number;
  /** Events buffered for one client before it is cut off as too slow. */
  maxWatcherBuffer?: number;
  log?: Logger;
}

interface Watcher {
  filter: ObjectFilter;
  from: number;
  seen: number;
  buffer: WatchOut[];
  wake: (() => void) | undefined;
  error: ConnectError | undefined;
}

const WAKE_SLICE = 64;

export function createWatchCache(kind: Kind, store: Store, opts: WatchCacheOptions = {}): WatchCache {
  const historySize = opts.historySize ?? 10_000;
  const maxBuffer = opts.maxWatcherBuffer ?? 50_000;
  const prefix = prefixFor(kind);
  const objects = new Map<string, ApiObject>();
  let history: CacheEvent[] = [];
  // Resumes from a revision below this one have lost events.
  let historyStart = 0;
  let rev = 0;
  const watchers = new Set<Watcher>();
  const listeners = new Set<(ev: CacheEvent | undefined) => void>();
  // Watchers whose filter needs one value of kind.watchIndex, by that value; the rest see every event.
  const indexGetter = kind.watchIndex ? kind.fields[kind.watchIndex] : undefined;
  const byIndex = new Map<string, Set<Watcher>>();
  const unindexed = new Set<Watcher>();
  function addWatcher(w: Watcher): void {
    watchers.add(w);
    const v = indexGetter ? w.filter.indexValue : undefined;
    if (v === undefined) return void unindexed.add(w);
    let set = byIndex.get(v);
    if (!set) byIndex.set(v, (set = new Set()));
    set.add(w);
  }
  function removeWatcher(w: Watcher): void {
    watchers.delete(w);
    unindexed.delete(w);
    const v = w.filter.indexValue;
    const set = v === undefined ? undefined : byIndex.get(v);
    if (set?.delete(w) && set.size === 0) byIndex.delete(v!);
  }
  const abort = new AbortController();
  let started: Promise<void> | undefined;
  // Set while stored objects cannot be decrypted (a key missing from the encryption config):
  // watches fail with it instead of showing a partial state, until a relist succeeds.
  let undecryptable: UndecryptableError | undefined;

  function cut(w: Watcher, err: ConnectError): void {
    w.error = err;
    removeWatcher(w);
    w.wake?.();
  }

  function deliver(w: Watcher, ev: CacheEvent): void {
    if (ev.revision <= w.from) return;
    const now = ev.type !== "DELETED" && w.filter(ev.obj);
    const before = ev.prev !== undefined && ev.type !== "ADDED" && w.filter(ev.prev);
    let type: EventType | undefined;
    if (ev.type === "DELETED") type = before || w.filter(ev.obj) ? "DELETED" : undefined;
    else if (now) type = before ? "MODIFIED" : "ADDED";
    else if (before) type = "DELETED"; // moved out of the selector: to this watcher it is gone
    if (!type) return;
    w.buffer.push({ type, obj: ev.obj, revision: ev.revision });
    if (w.buffer.length > maxBuffer) {
      cut(w, new ConnectError("watcher too slow: resume from the last resource version received", Code.ResourceExhausted));
      return;
    }
    if (w.wake) toWake.add(w);
    scheduleWakes();
  }

  // Waking a thousand watch streams in one turn of the event loop delays every byte until all of
  // them are done (HTTP/2 writes only go out between turns): wake them in slices.
  const toWake = new Set<Watcher>();
  let wakeScheduled = false;
  function scheduleWakes(): void {
    if (wakeScheduled || toWake.size === 0) return;
    wakeScheduled = true;
    setImmediate(() => {
      wakeScheduled = false;
      let n = 0;
      for (const w of toWake) {
        toWake.delete(w);
        w.wake?.();
        if (++n >= WAKE_SLICE) break;
      }
      scheduleWakes();
    });
  }

  function record(ev: CacheEvent): void {
    rev = ev.revision;
    history.push(ev);
    if (history.length > historySize * 2) {
      const dropped = history.length - historySize;
      historyStart = history[dropped - 1].revision;
      history = history.slice(dropped);
    }
    for (const l of listeners) l(ev);
    for (const w of unindexed) deliver(w, ev);
    if (byIndex.size === 0) return;
    // Only the watchers of the object's value, and of its old value (to them it may be gone).
    const now = String(indexGetter!(ev.obj) ?? "");
    byIndex.get(now)?.forEach((w) => deliver(w, ev));
    const before = ev.prev === undefined ? now : String(indexGetter!(ev.prev) ?? "");
    if (before !== now) byIndex.get(before)?.forEach((w) => deliver(w, ev));
  }

  function apply(e: WatchEvent): void {
    const prev = objects.get(e.key);
    if (e.type === "put") {
      const obj = decode(kind, e.value!, e.modRevision);
      objects.set(e.key, obj);
      record({ type: prev ? "MODIFIED" : "ADDED", obj, prev, revision: e.modRevision });
    } else {
      const last = prev ?? (e.prevValue ? decode(kind, e.prevValue, e.modRevision) : undefined);
      objects.delete(e.key);
      if (!last) return;
      // The deleted object carries the revision of its deletion, like Kubernetes.
      const obj = { ...last, metadata: last.metadata ? { ...last.metadata, resourceVersion: String(e.modRevision) } : undefined } as ApiObject;
      record({ type: "DELETED", obj, prev: last, revision: e.modRevision });
    }
  }

  async function relist(): Promise<void> {
    const { items, revision } = await store.list(prefix);
    objects.clear();
    for (const kv of items) objects.set(kv.key, decode(kind, kv.value, kv.modRevision));
    history = [];
    historyStart = revision;
    rev = revision;
    undecryptable = undefined;
    // Events between the old state and this list are unknown: every open watch must relist.
    for (const w of [...watchers]) cut(w, tooOld(w.seen));
    for (const l of listeners) l(undefined);
  }

  async function loop(firstList: () => void): Promise<void> {
    let needList = true;
    let backoff = 100;
    while (!abort.signal.aborted) {
      try {
        if (needList) {
          await relist();
          needList = false;
          firstList();
        }
        for await (const batch of store.watch(prefix, rev + 1, abort.signal)) {
          for (const e of batch) apply(e);
          backoff = 100;
        }
        if (abort.signal.aborted) return;
      } catch (err) {
        if (abort.signal.aborted) return;
        if (err instanceof StoreError && err.code === "Compacted") needList = true;
        if (err instanceof UndecryptableError) {
          // The server still starts and serves everything else; this kind's watches get the error.
          needList = true;
          undecryptable = err;
          for (const w of [...watchers]) cut(w, err);
          firstList();
        }
        opts.log?.warn({ kind: kind.kind, err: String(err) }, "storage watch ended; re-watching");
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  function tooOld(from: number): ConnectError {
    return new ConnectError(
      `resource version ${from} is too old (the server keeps events after ${historyStart}): list again and watch from the new resource version`,
      Code.OutOfRange,
    );
  }

  return {
    kind,
    start() {
      started ??= new Promise<void>((resolve, reject) => {
        loop(resolve).catch(reject);
      });
      return started;
    },
    stop() {
      abort.abort();
      for (const w of [...watchers]) cut(w, new ConnectError("server shutting down", Code.Unavailable));
    },
    revision: () => rev,
    get: (key) => objects.get(key),
    list: () => [...objects.values()],
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    compact(revision) {
      if (revision <= historyStart) return;
      history = history.filter((e) => e.revision > revision);
      historyStart = revision;
    },
    watcherCount: () => watchers.size,
    watch(from, filter) {
      const w: Watcher = { filter, from, seen: from, buffer: [], wake: undefined, error: undefined };
      if (undecryptable) throw undecryptable;
      if (from < historyStart) {
        throw tooOld(from);
      } else {
        // Replay and register in one synchronous step, so no event falls between the two.
        for (const ev of history) deliver(w, ev);
      }
      addWatcher(w);
      return {
        async next(timeoutMs) {
          if (w.buffer.length === 0 && !w.error) {
            let timer: NodeJS.Timeout | undefined;
            await new Promise<void>((r) => {
              w.wake = r;
              timer = setTimeout(r, timeoutMs);
            });
            clearTimeout(timer);
            w.wake = undefined;
          }
          if (w.buffer.length > 0) {
            const out = w.buffer;
            w.buffer = [];
            w.seen = Math.max(w.seen, out[out.length - 1].revision);
            return out;
          }
          if (w.error) throw w.error;
          return [];
        },
        revision: () => Math.max(w.seen, w.from),
        close() {
          removeWatcher(w);
          w.error ??= new ConnectError("watch closed", Code.Canceled);
          w.wake?.();
        },
      };
    },
  };
}
