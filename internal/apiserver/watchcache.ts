// The watch cache: ONE storage watch per kind, decoded once, fanned out to every client watch
// with its selectors applied here. It keeps the current objects (for the initial state of a
// watch) and a window of recent events bounded by count and bytes (watch-history.ts, for
// resumes); older resumes get OUT_OF_RANGE and the client relists, as with Kubernetes' cacher.
// A resume is replayed from that window a slice at a time, as its client reads.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ApiObject, Kind } from "../api/registry.ts";
import { UndecryptableError } from "../encryption/providers.ts";
import { StoreError, type Store, type WatchEvent } from "../storage/store.ts";
import { atRevision, bytesOf, decode, encode, prefixFor } from "./objects.ts";
import { createWatchBudget, EVENT_OVERHEAD_BYTES, type BudgetHolder, type WatchBudget } from "./watch-budget.ts";
import { createWatchHistory } from "./watch-history.ts";

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface CacheEvent {
  type: EventType;
  obj: ApiObject;
  /** The object before this event (MODIFIED and DELETED). */
  prev?: ApiObject;
  revision: number;
  /** What holding this event in a watcher's buffer costs (watch-budget.ts). */
  cost: number;
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
  /**
   * This server just wrote `obj` (as stored, its resource version set) at `revision`: the event
   * of that write may take the object instead of decoding the same bytes again. Objects read from
   * storage or handed back after a write are never changed afterwards (objects.ts).
   */
  noteWritten(key: string, revision: number, obj: ApiObject): void;
  /**
   * This server is about to write `obj` (just encoded) under `key`. When that write's event comes
   * before its reply (noteWritten) and holds exactly those bytes, the cache takes a copy of `obj`
   * at the event's revision instead of decoding the bytes.
   */
  noteWriting(key: string, obj: ApiObject): void;
  /** Drops history at or below a revision (after storage compaction). */
  compact(revision: number): void;
  watcherCount(): number;
}

export interface WatchCacheOptions {
  /** Events kept for resumes. */
  historySize?: number;
  /** Bytes of events kept for resumes (stored object sizes, watch-history.ts). */
  historyBytes?: number;
  /** Events buffered for one client before it is cut off as too slow. */
  maxWatcherBuffer?: number;
  /** Byte budget of watch buffers, shared by every kind's cache. Default: a budget of its own. */
  budget?: WatchBudget;
  log?: Logger;
}

interface Watcher extends BudgetHolder {
  filter: ObjectFilter;
  from: number;
  seen: number;
  /** History still to replay: events above replayAfter, up to replayUntil (the revision when it started). */
  replayAfter: number;
  replayUntil: number;
  buffer: WatchOut[];
  wake: (() => void) | undefined;
  error: ConnectError | undefined;
}

const WAKE_SLICE = 64;
/** Objects this server wrote whose events are still to come, at most (a bound, not a tuning). */
const MAX_JUST_WRITTEN = 1024;
/** History events decoded per read of a resuming watch. */
const REPLAY_SLICE = 256;

export function createWatchCache(kind: Kind, store: Store, opts: WatchCacheOptions = {}): WatchCache {
  const history = createWatchHistory(opts.historySize ?? 10_000, opts.historyBytes ?? 64 * 1024 * 1024);
  const maxBuffer = opts.maxWatcherBuffer ?? 50_000;
  const budget = opts.budget ?? createWatchBudget();
  const prefix = prefixFor(kind);
  const objects = new Map<string, ApiObject>();
  // What this server wrote, by key, until the write's event is applied (noteWritten).
  const justWritten = new Map<string, { revision: number; obj: ApiObject }>();
  // What this server is writing, by key, until the write's reply or event (noteWriting).
  const writing = new Map<string, ApiObject>();
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
    budget.remove(w);
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
    // Freed now, not when the client next reads: a client that never reads must cost nothing.
    w.buffer = [];
    removeWatcher(w);
    w.wake?.();
  }

  function tooSlow(w: Watcher, why: string): ConnectError {
    return new ConnectError(
      `watch too slow: ${why}; resume from the last resource version you received (the server had sent up to ${w.seen})`,
      Code.ResourceExhausted,
    );
  }

  /** What an event is to a watcher with this filter, if anything. */
  function typeFor(filter: ObjectFilter, ev: Pick<CacheEvent, "type" | "obj" | "prev">): EventType | undefined {
    const now = ev.type !== "DELETED" && filter(ev.obj);
    const before = ev.prev !== undefined && ev.type !== "ADDED" && filter(ev.prev);
    if (ev.type === "DELETED") return before || filter(ev.obj) ? "DELETED" : undefined;
    if (now) return before ? "MODIFIED" : "ADDED";
    if (before) return "DELETED"; // moved out of the selector: to this watcher it is gone
    return undefined;
  }

  function deliver(w: Watcher, ev: CacheEvent): void {
    if (ev.revision <= w.from) return;
    const type = typeFor(w.filter, ev);
    if (!type) return;
    w.buffer.push({ type, obj: ev.obj, revision: ev.revision });
    if (w.buffer.length > maxBuffer) {
      budget.cuts.watcher++;
      cut(w, tooSlow(w, `${w.buffer.length} events unsent (at most ${maxBuffer})`));
      return;
    }
    budget.charge(w, ev.cost);
    if (w.error) return; // cut by the total budget just now
    if (w.bytes > budget.perWatcherBytes) {
      budget.cuts.watcher++;
      cut(w, tooSlow(w, `${w.bytes} bytes of events unsent (at most ${budget.perWatcherBytes} per watch)`));
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

  /**
   * The next slice of a resuming watcher's replay, decoded now (the history keeps bytes only), or
   * undefined when the replay is done. Throws OUT_OF_RANGE when the history moved past it.
   */
  function replaySlice(w: Watcher): WatchOut[] | undefined {
    while (w.replayAfter < w.replayUntil) {
      if (w.replayAfter < history.start()) throw tooOld(w.seen);
      const entries = history.after(w.replayAfter, REPLAY_SLICE);
      const out: WatchOut[] = [];
      for (const e of entries) {
        if (e.revision > w.replayUntil) break;
        w.replayAfter = e.revision;
        const obj = decode(kind, e.bytes, e.revision);
        const prev = e.prevBytes ? decode(kind, e.prevBytes, e.revision) : undefined;
        const type = typeFor(w.filter, { type: e.type, obj, prev });
        if (type) out.push({ type, obj, revision: e.revision });
      }
      if (entries.length === 0 || entries[entries.length - 1].revision >= w.replayUntil) w.replayAfter = w.replayUntil;
      if (out.length > 0) return out;
    }
    return undefined;
  }

  const storedBytesOf = (obj: ApiObject) => bytesOf(obj) ?? encode(kind, obj);

  function record(ev: CacheEvent): void {
    rev = ev.revision;
    history.push({ type: ev.type, revision: ev.revision, bytes: storedBytesOf(ev.type === "DELETED" ? ev.prev! : ev.obj), prevBytes: ev.prev && ev.type !== "DELETED" ? storedBytesOf(ev.prev) : undefined });
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
    const mine = justWritten.get(e.key);
    if (mine && mine.revision <= e.modRevision) justWritten.delete(e.key);
    if (e.type === "put") {
      // The object this server wrote at this very revision holds exactly these bytes; one it is
      // writing whose reply has not come yet is taken when the bytes are the same.
      const obj = mine?.revision === e.modRevision ? mine.obj : (sameAsWriting(e.key, e.value!, e.modRevision) ?? decode(kind, e.value!, e.modRevision));
      objects.set(e.key, obj);
      record({ type: prev ? "MODIFIED" : "ADDED", obj, prev, revision: e.modRevision, cost: e.value!.length + EVENT_OVERHEAD_BYTES });
    } else {
      const last = prev ?? (e.prevValue ? decode(kind, e.prevValue, e.modRevision) : undefined);
      objects.delete(e.key);
      if (!last) return;
      // The deleted object carries the revision of its deletion, like Kubernetes.
      const obj = atRevision(last, e.modRevision);
      record({ type: "DELETED", obj, prev: last, revision: e.modRevision, cost: (bytesOf(last)?.length ?? 0) + EVENT_OVERHEAD_BYTES });
    }
  }

  function sameAsWriting(key: string, value: Uint8Array, revision: number): ApiObject | undefined {
    const obj = writing.get(key);
    if (!obj) return undefined;
    writing.delete(key);
    const bytes = bytesOf(obj);
    return bytes && Buffer.compare(bytes, value) === 0 ? atRevision(obj, revision) : undefined;
  }

  async function relist(): Promise<void> {
    const { items, revision } = await store.list(prefix);
    objects.clear();
    justWritten.clear();
    writing.clear();
    for (const kv of items) objects.set(kv.key, decode(kind, kv.value, kv.modRevision));
    history.reset(revision);
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
        // The cache holds every current object: a deleted one's last value comes from it, and
        // etcd need not read the previous revision for each event.
        for await (const batch of store.watch(prefix, rev + 1, abort.signal, { prevValues: false })) {
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
      `resource version ${from} is too old (the server keeps events after ${history.start()}): list again and watch from the new resource version`,
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
    noteWritten(key, revision, obj) {
      writing.delete(key);
      if (revision <= rev) return; // its event came first
      justWritten.delete(key);
      justWritten.set(key, { revision, obj });
      if (justWritten.size > MAX_JUST_WRITTEN) justWritten.delete(justWritten.keys().next().value!);
    },
    noteWriting(key, obj) {
      writing.delete(key);
      writing.set(key, obj);
      if (writing.size > MAX_JUST_WRITTEN) writing.delete(writing.keys().next().value!);
    },
    compact(revision) {
      history.compact(revision);
    },
    watcherCount: () => watchers.size,
    watch(from, filter) {
      const w: Watcher = {
        filter,
        from,
        seen: from,
        replayAfter: from,
        replayUntil: rev,
        buffer: [],
        wake: undefined,
        error: undefined,
        bytes: 0,
        cut: () => cut(w, tooSlow(w, "the watch buffers of all clients together are over their budget")),
      };
      if (undecryptable) throw undecryptable;
      if (from < history.start()) throw tooOld(from);
      budget.add(w);
      // Registered at the current revision: what came before is replayed from history as the
      // client reads (replaySlice), what comes after is delivered live. Nothing falls between.
      addWatcher(w);
      return {
        async next(timeoutMs) {
          if (!w.error && w.replayAfter < w.replayUntil) {
            try {
              const replayed = replaySlice(w);
              if (replayed) {
                w.seen = Math.max(w.seen, replayed[replayed.length - 1].revision);
                return replayed;
              }
            } catch (err) {
              cut(w, err as ConnectError);
            }
          }
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
            budget.charge(w, -w.bytes);
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
