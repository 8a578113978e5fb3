// An MVCC store in memory with etcd's revision semantics: one global revision (starting at 1),
// bumped by every write; a bounded event history that serves watch replay and list-at-revision;
// compaction (automatic when the history outgrows historyLimit, or explicit).
//
// Watchers do not get a copy of each event: every watcher is a cursor into the one shared
// history, so a write costs O(watchers waiting) and a slow consumer costs nothing until the
// history it still needs is compacted away (then it gets Compacted, as an etcd watcher would).

import {
  assertDistinctKeys,
  assertListOptions,
  assertRevision,
  preconditionError,
  StoreError,
  type DeletedKeyValue,
  type KeyValue,
  type ListResult,
  type Store,
  type TxnOp,
  type TxnResult,
  type WatchEvent,
  type WatchOptions,
  type WrittenKeyValue,
} from "./store.ts";

/** An event as a watch without previous values sees it (etcd's, without prev_kv). */
function withoutPrevious(e: WatchEvent): WatchEvent {
  if (e.prevValue === undefined) return e;
  const { prevValue: _prev, ...rest } = e;
  if (e.type === "delete") delete rest.createRevision;
  return rest;
}

export interface MemoryStoreOptions {
  /** Events kept for watch replay and past reads; older ones are compacted. Default 10,000. */
  historyLimit?: number;
  /** Most ops in one txn. Default 128, etcd's default --max-txn-ops, so limits show up early. */
  maxTxnOps?: number;
}

interface HistoryEntry {
  event: WatchEvent; // shared by every watcher: consumers must not mutate it
  prev: KeyValue | undefined; // the key's state before this event, to read at past revisions
}

interface Cursor {
  prefix: string;
  /** The watch's fromRevision: a watch may start in the future, as in etcd. */
  minRevision: number;
  /** Sequence number of the next history entry this watcher has not looked at. */
  seq: number;
  wake: (() => void) | undefined;
}

export function createMemoryStore(opts: MemoryStoreOptions = {}): Store {
  const historyLimit = opts.historyLimit ?? 10_000;
  const maxTxnOps = opts.maxTxnOps ?? 128;
  assertRevision("historyLimit", historyLimit, 1);

  let revision = 1; // like etcd: an empty store is at revision 1
  let compactRevision = 1; // reads and watches at revisions >= this are served
  let closed = false;
  const live = new Map<string, KeyValue>();
  const sortedKeys: string[] = [];

  // history[head..] holds the retained entries; entry i has sequence number firstSeq + i - head.
  let history: HistoryEntry[] = [];
  let head = 0;
  let firstSeq = 0;
  const endSeq = () => firstSeq + history.length - head;
  const entryAt = (seq: number) => history[head + seq - firstSeq];

  const cursors = new Set<Cursor>();
  const waiting = new Set<Cursor>();

  function checkOpen(): void {
    if (closed) throw new StoreError("Unavailable", "memory store is closed");
  }

  function lowerBound(key: string): number {
    let lo = 0;
    let hi = sortedKeys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sortedKeys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Indexes [lo, hi) of sortedKeys that start with prefix. */
  function prefixRange(prefix: string): [number, number] {
    const lo = lowerBound(prefix);
    let hi = lo;
    while (hi < sortedKeys.length && sortedKeys[hi].startsWith(prefix)) hi++;
    return [lo, hi];
  }

  function firstSeqAtOrAfter(rev: number): number {
    let lo = head;
    let hi = history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (history[mid].event.modRevision < rev) lo = mid + 1;
      else hi = mid;
    }
    return firstSeq + lo - head;
  }

  function dropOldest(): void {
    const dropped = history[head];
    const seq = firstSeq;
    history[head] = undefined as unknown as HistoryEntry; // let the bytes go
    head++;
    firstSeq++;
    compactRevision = Math.max(compactRevision, dropped.event.modRevision + 1);
    // A lagging watcher parked exactly here only loses something if the event was its own.
    for (const c of cursors) {
      if (c.seq !== seq) continue;
      const needed = dropped.event.modRevision >= c.minRevision && dropped.event.key.startsWith(c.prefix);
      if (!needed) c.seq = seq + 1;
    }
    if (head > 1024 && head * 2 > history.length) {
      history = history.slice(head);
      head = 0;
    }
  }

  function trimHistory(): void {
    while (history.length - head > historyLimit) {
      const rev = history[head].event.modRevision;
      if (rev === revision) break; // never compact the newest revision
      // Drop whole revisions so that a retained revision is always complete.
      while (head < history.length && history[head].event.modRevision === rev) dropOldest();
    }
  }

  function notify(from: number): void {
    const end = endSeq();
    for (const c of waiting) {
      let relevant = false;
      for (let s = from; s < end && !relevant; s++) relevant = entryAt(s).event.key.startsWith(c.prefix);
      if (relevant) {
        waiting.delete(c);
        c.wake?.();
      } else {
        c.seq = end; // an idle watcher has seen everything: keep it off the compaction path
      }
    }
  }

  function insertKey(key: string): void {
    sortedKeys.splice(lowerBound(key), 0, key);
  }

  function removeKey(key: string): void {
    const i = lowerBound(key);
    if (sortedKeys[i] === key) sortedKeys.splice(i, 1);
  }

  function applyTxn(ops: TxnOp[]): TxnResult {
    checkOpen();
    assertDistinctKeys(ops);
    if (ops.length > maxTxnOps) throw new RangeError(`too many operations in one txn: ${ops.length} > ${maxTxnOps}`);
    for (const op of ops) {
      const err = preconditionError(op, live.get(op.key));
      if (err) throw err;
    }
    if (ops.length === 0) return { revision, results: [] };

    const rev = ++revision;
    const from = endSeq();
    const results: (WrittenKeyValue | DeletedKeyValue)[] = [];
    for (const op of ops) {
      const prev = live.get(op.key);
      if (op.op === "delete") {
        // preconditionError guarantees prev exists
        const old = prev as KeyValue;
        live.delete(op.key);
        removeKey(op.key);
        history.push({
          event: { type: "delete", key: op.key, prevValue: old.value, modRevision: rev, createRevision: old.createRevision },
          prev: old,
        });
        results.push({ ...old, deleteRevision: rev });
        continue;
      }
      // Copy: the caller may reuse its buffer, and history must not change under watchers.
      const kv: KeyValue = {
        key: op.key,
        value: op.value.slice(),
        createRevision: prev ? prev.createRevision : rev,
        modRevision: rev,
      };
      live.set(op.key, kv);
      if (!prev) insertKey(op.key);
      const event: WatchEvent = { type: "put", key: op.key, value: kv.value, modRevision: rev, createRevision: kv.createRevision };
      if (prev) event.prevValue = prev.value;
      history.push({ event, prev });
      results.push({ key: kv.key, value: kv.value, modRevision: rev });
    }
    trimHistory();
    notify(Math.max(from, firstSeq));
    return { revision: rev, results };
  }

  /** The first `limit` keys under prefix from startKey on (sorted), at revision `at`. */
  function listAt(prefix: string, at: number, startKey = prefix, limit = 0): ListResult {
    if (at > revision) throw new RangeError(`revision ${at} is in the future (current ${revision})`);
    if (at < compactRevision) {
      throw new StoreError("Compacted", `revision ${at} has been compacted (oldest ${compactRevision})`, {
        compactRevision,
      });
    }
    const [first, hi] = prefixRange(prefix);
    const lo = Math.max(first, lowerBound(startKey));
    const page = (all: number, get: (i: number) => KeyValue): ListResult => {
      const n = limit > 0 ? Math.min(limit, all) : all;
      return { items: Array.from({ length: n }, (_, i) => get(i)), revision: at, remaining: all - n };
    };
    if (at === revision) return page(Math.max(0, hi - lo), (i) => live.get(sortedKeys[lo + i]) as KeyValue);
    // Undo the newer events, newest first: what remains set last is the state at `at`.
    const past = new Map<string, KeyValue | undefined>();
    for (let i = history.length - 1; i >= head && history[i].event.modRevision > at; i--) {
      const { event, prev } = history[i];
      if (event.key.startsWith(prefix) && event.key >= startKey) past.set(event.key, prev);
    }
    const items: KeyValue[] = [];
    for (let i = lo; i < hi; i++) if (!past.has(sortedKeys[i])) items.push(live.get(sortedKeys[i]) as KeyValue);
    for (const kv of past.values()) if (kv) items.push(kv);
    items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return page(items.length, (i) => items[i]);
  }

  /** The next revision's events for this cursor, advancing it; undefined when caught up. */
  function nextBatch(c: Cursor): WatchEvent[] | undefined {
    const end = endSeq();
    const wanted = (e: WatchEvent) => e.modRevision >= c.minRevision && e.key.startsWith(c.prefix);
    while (c.seq < end && !wanted(entryAt(c.seq).event)) c.seq++;
    if (c.seq === end) return undefined;
    const rev = entryAt(c.seq).event.modRevision;
    const batch: WatchEvent[] = [];
    for (; c.seq < end && entryAt(c.seq).event.modRevision === rev; c.seq++) {
      const { event } = entryAt(c.seq);
      if (wanted(event)) batch.push(event);
    }
    return batch;
  }

  async function* watch(prefix: string, fromRevision: number, signal: AbortSignal, opts?: WatchOptions): AsyncGenerator<WatchEvent[]> {
    const prevValues = opts?.prevValues ?? true;
    checkOpen();
    if (signal.aborted) return;
    const from = fromRevision <= 0 ? revision + 1 : fromRevision;
    if (from < compactRevision) {
      throw new StoreError("Compacted", `watch from revision ${from}: compacted (oldest ${compactRevision})`, {
        compactRevision,
      });
    }
    const c: Cursor = { prefix, minRevision: from, seq: firstSeqAtOrAfter(from), wake: undefined };
    const onAbort = () => {
      waiting.delete(c);
      c.wake?.();
    };
    cursors.add(c);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (signal.aborted || closed) return;
        if (c.seq < firstSeq) {
          throw new StoreError("Compacted", `watcher on ${prefix} fell behind the compacted history (oldest ${compactRevision})`, {
            compactRevision,
          });
        }
        const batch = nextBatch(c);
        if (batch) {
          yield prevValues ? batch : batch.map(withoutPrevious);
          continue;
        }
        await new Promise<void>((resolve) => {
          c.wake = resolve;
          waiting.add(c);
        });
        c.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      cursors.delete(c);
      waiting.delete(c);
    }
  }

  return {
    async get(key) {
      checkOpen();
      return live.get(key);
    },
    async list(prefix, listOpts) {
      checkOpen();
      assertListOptions(prefix, listOpts);
      return listAt(prefix, listOpts?.revision || revision, listOpts?.startKey, listOpts?.limit);
    },
    async count(prefix) {
      checkOpen();
      const [lo, hi] = prefixRange(prefix);
      return hi - lo;
    },
    async create(key, value) {
      return applyTxn([{ op: "create", key, value }]).results[0];
    },
    async update(key, value, expectedModRevision) {
      return applyTxn([{ op: "update", key, value, expectedModRevision }]).results[0];
    },
    async delete(key, expectedModRevision) {
      return applyTxn([{ op: "delete", key, expectedModRevision }]).results[0] as DeletedKeyValue;
    },
    async txn(ops) {
      return applyTxn(ops);
    },
    watch,
    async currentRevision() {
      checkOpen();
      return revision;
    },
    async compact(rev) {
      checkOpen();
      assertRevision("revision", rev, 1);
      if (rev > revision) throw new RangeError(`cannot compact at future revision ${rev} (current ${revision})`);
      while (head < history.length && history[head].event.modRevision < rev) dropOldest();
      compactRevision = Math.max(compactRevision, rev);
    },
    async ready() {
      return !closed;
    },
    async close() {
      closed = true;
      for (const c of waiting) c.wake?.();
      waiting.clear();
    },
  };
}
