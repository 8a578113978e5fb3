// Store.watch on etcd. etcd3's WatchManager multiplexes every watcher of a client on one gRPC
// stream; we only use its Watcher as a raw event source and keep our own position (`next`, the
// first revision not yet handed to the consumer), because etcd3's own recovery is unsafe for us:
//
// - After a stream error it re-attaches watchers from the last header revision it saw, and the
//   "created" header already carries the current revision, so a watcher still replaying history
//   would skip events. We therefore cancel the etcd3 watcher on "disconnected" and, if etcd still
//   answers, open a fresh one from `next` ourselves; if it doesn't, the consumer gets Unavailable.
// - A compaction cancels the watch with compact_revision set, but etcd3 only emits an "error"
//   with an empty reason. On any watcher error we ask etcd whether `next` is still readable:
//   "required revision has been compacted" -> Compacted, no answer -> Unavailable, else resume.
// - Watches go to one member (an etcd3 client per member); a broken one is resumed on the next.
//   grpc-js has no connect timeout: a watch etcd has not confirmed within confirmWithinMs counts
//   as broken.
// - Watcher.cancel() can wait forever for a reply when the stream dies at the wrong moment, so
//   we never block the consumer on it.

import type { Etcd3, IEvent, IWatchResponse, Watcher } from "etcd3";
import { isUnavailableError } from "./etcd-errors.ts";
import { bytes, prefixRange } from "./etcd-keys.ts";
import { StoreError, type WatchEvent } from "./store.ts";

export interface EtcdWatchDeps {
  /** One client per etcd member (each its own watch stream), in order of preference; changed in place when the members change (etcd-endpoints.ts). */
  clients: Etcd3[];
  root: Buffer;
  keyOf(key: Buffer): string;
  currentRevision(): Promise<number>;
  /** "ok" if etcd can read at revision, "compacted" if not, else the error it failed with. */
  probe(revision: number): Promise<"ok" | "compacted" | unknown>;
  isClosed(): boolean;
  /**
   * A watch etcd has not confirmed (its "created" answer) within this long is opened again on the
   * next member: grpc-js has no connect timeout, a stream to a dead machine would wait for ever.
   */
  confirmWithinMs?: number;
}

type Item = { batch: WatchEvent[] } | { broken: unknown } | { stop: true };

// Stream failures in a row, each followed by a healthy probe, before we give up.
const MAX_RESUMES = 5;

function toEvent(ev: IEvent, keyOf: (k: Buffer) => string): WatchEvent {
  const modRevision = Number(ev.kv.mod_revision);
  const key = keyOf(ev.kv.key);
  if (String(ev.type).toLowerCase() === "delete") {
    const out: WatchEvent = { type: "delete", key, modRevision };
    if (ev.prev_kv) {
      out.prevValue = bytes(ev.prev_kv.value);
      out.createRevision = Number(ev.prev_kv.create_revision);
    }
    return out;
  }
  const out: WatchEvent = { type: "put", key, value: bytes(ev.kv.value), modRevision, createRevision: Number(ev.kv.create_revision) };
  if (ev.prev_kv) out.prevValue = bytes(ev.prev_kv.value);
  return out;
}

/** One response may carry several revisions: split it into one batch per revision. */
function toBatches(res: IWatchResponse, keyOf: (k: Buffer) => string): WatchEvent[][] {
  const batches: WatchEvent[][] = [];
  for (const ev of res.events ?? []) {
    const event = toEvent(ev, keyOf);
    const last = batches[batches.length - 1];
    if (last && last[0].modRevision === event.modRevision) last.push(event);
    else batches.push([event]);
  }
  return batches;
}

export function createEtcdWatchFactory(deps: EtcdWatchDeps) {
  const active = new Set<(item: Item) => void>();
  // The member new and resumed watches go to; moves on when a watch on it breaks.
  let preferred = 0;
  const cancelling = new Set<Promise<void>>();

  function release(watcher: Watcher): void {
    const p: Promise<void> = watcher
      .cancel()
      .catch(() => {})
      .finally(() => cancelling.delete(p));
    cancelling.add(p);
  }

  /** Starts an etcd3 watcher from `from`; everything it reports goes to push, in order. */
  function open(range: { key: Buffer; range_end: Buffer }, from: number, prevValues: boolean, push: (item: Item) => void) {
    // The members may have become fewer since `preferred` was set.
    const member = preferred < deps.clients.length ? preferred : (preferred = 0);
    const broke = (err: unknown) => {
      if (preferred === member) preferred = (member + 1) % deps.clients.length;
      push({ broken: err });
    };
    const builder = deps.clients[member].watch().inRange({ start: range.key, end: range.range_end }).startRevision(String(from));
    // Without previous values etcd reads no past revision per event.
    const watcher = (prevValues ? builder.withPreviousKV() : builder).watcher(); // not create(): listeners must be on before the first response arrives
    let dead = false;
    const unconfirmed =
      deps.confirmWithinMs === undefined
        ? undefined
        : setTimeout(() => {
            if (dead) return;
            dead = true;
            release(watcher);
            broke(new Error(`etcd did not confirm the watch within ${deps.confirmWithinMs} ms`));
          }, deps.confirmWithinMs);
    unconfirmed?.unref();
    watcher.on("connected", () => clearTimeout(unconfirmed));
    watcher.on("data", (res: IWatchResponse) => {
      if (dead) return;
      for (const batch of toBatches(res, deps.keyOf)) push({ batch });
    });
    // etcd3 has already dropped a watcher it reports an error for.
    watcher.on("error", (err: unknown) => {
      if (dead) return;
      dead = true;
      clearTimeout(unconfirmed);
      broke(err);
    });
    // etcd3 would re-attach this watcher on reconnect: detach it (synchronous while idle).
    watcher.on("disconnected", (err: unknown) => {
      if (dead) return;
      dead = true;
      clearTimeout(unconfirmed);
      release(watcher);
      broke(err ?? new Error("watch stream disconnected"));
    });
    return {
      cancel() {
        clearTimeout(unconfirmed);
        if (dead) return;
        dead = true;
        release(watcher);
      },
    };
  }

  async function* watch(prefix: string, fromRevision: number, signal: AbortSignal, prevValues = true): AsyncGenerator<WatchEvent[]> {
    if (deps.isClosed()) throw new StoreError("Unavailable", "etcd store is closed");
    if (signal.aborted) return;
    let next = fromRevision > 0 ? fromRevision : (await deps.currentRevision()) + 1;
    const range = prefixRange(Buffer.concat([deps.root, Buffer.from(prefix, "utf8")]));

    const inbox: Item[] = [];
    let wake: (() => void) | undefined;
    const push = (item: Item) => {
      inbox.push(item);
      wake?.();
    };
    const onAbort = () => push({ stop: true });
    signal.addEventListener("abort", onAbort, { once: true });
    active.add(push);

    let current: { cancel(): void } | undefined;
    let resumes = 0;
    try {
      current = open(range, next, prevValues, push);
      for (;;) {
        if (signal.aborted || deps.isClosed()) return;
        const item = inbox.shift();
        if (!item) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if ("stop" in item) return;
        if ("batch" in item) {
          if (item.batch[0].modRevision < next) continue; // already delivered before a resume
          next = item.batch[0].modRevision + 1;
          resumes = 0;
          yield item.batch;
          continue;
        }
        // The etcd3 watcher is gone. Batches it delivered before breaking were handled above.
        const verdict = await deps.probe(next);
        if (signal.aborted || deps.isClosed()) return;
        if (verdict === "compacted") {
          throw new StoreError("Compacted", `watch ${prefix} from revision ${next}: required revision has been compacted`, {
            cause: item.broken,
          });
        }
        if (verdict !== "ok") {
          const cause = isUnavailableError(verdict) ? verdict : item.broken;
          throw new StoreError("Unavailable", `watch ${prefix}: etcd unavailable: ${String((cause as Error)?.message ?? cause)}`, { cause });
        }
        if (++resumes > MAX_RESUMES) {
          throw new StoreError("Unavailable", `watch ${prefix}: watch stream keeps failing: ${String(item.broken)}`, {
            cause: item.broken,
          });
        }
        await new Promise((r) => setTimeout(r, 50 * resumes));
        if (signal.aborted || deps.isClosed()) return;
        current = open(range, next, prevValues, push);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      active.delete(push);
      current?.cancel();
    }
  }

  return {
    watch,
    /** Ends every watch quietly and waits (bounded) for etcd to confirm the cancellations. */
    async closeAll(): Promise<void> {
      for (const push of active) push({ stop: true });
      await new Promise((r) => setImmediate(r));
      if (cancelling.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...cancelling]),
        new Promise((r) => (timer = setTimeout(r, 2000))),
      ]);
      clearTimeout(timer);
    },
  };
}
