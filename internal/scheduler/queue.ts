// The scheduling queue: which pending pod to try next, and when to try a failed one again.
//
//   add ─► active (heap: priority, then arrival) ─► pop ─► in flight ─► done (bound / gone)
//                 ▲        ▲                                   │
//                 │        └── backoff (heap by due time) ◄────┤ failed, but something changed
//                 │              ▲ timer                       │ meanwhile, or a bind error
//                 │              │                             ▼
//                 └──────────────┴──── moveAll(event) ◄── unschedulable (parked until a node or
//                                      or parked too long       pod event that may help)
//
// Backoff per pod: initialMs × 2^(attempts-1), capped at maxMs. A moved pod whose backoff has not
// expired waits it out in the backoff heap. The "move sequence" closes the race between a pod
// in flight and an event arriving during its attempt: if any moveAll happened since the pod was
// popped, its failure sends it to backoff instead of parking it (the event may have helped).
// Entries are keyed by pod uid; heaps use lazy deletion (an item is stale when its entry's
// generation moved on).
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createHeap } from "./heap.ts";

export type EntryState = "active" | "backoff" | "unschedulable" | "inflight" | "gone";

export interface QueuedPod {
  readonly uid: string;
  /** namespace/name: where to find the newest copy in the informer. */
  key: string;
  priority: number;
  /** Failed attempts so far. */
  attempts: number;
  /** When the pod was first queued (the queue's clock, ms): the start of its end-to-end latency. */
  readonly queuedAt: number;
  state: EntryState;
  /** Whether the pod has required pod affinity (moved when other pods appear). */
  podAffinity: boolean;
}

interface Entry extends QueuedPod {
  seq: number;
  gen: number;
  backoffUntil: number;
  parkedAt: number;
  poppedAtMove: number;
  updatedInFlight: boolean;
}

export interface QueueOptions {
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A parked pod is tried again after this long even without an event. Default 30 s. */
  maxUnschedulableMs?: number;
  now?: () => number;
}

export interface SchedulingQueue {
  /** A pod that needs scheduling (new, or seen again). Known pods only get their key refreshed. */
  add(pod: Pod): void;
  /** Its spec or labels changed: a parked pod is tried again (after its backoff). */
  update(pod: Pod): void;
  /** It no longer needs scheduling (bound, deleted, terminal). */
  delete(uid: string): void;
  /** The next pod to schedule; waits while none is active; undefined once closed or aborted. */
  pop(signal?: AbortSignal): Promise<QueuedPod | undefined>;
  /** The attempt failed: park it (`unschedulable`) or back off and retry (`error`). */
  failed(pod: QueuedPod, why: "unschedulable" | "error"): void;
  /** The attempt is over for good (bound, or nothing left to do). */
  done(uid: string): void;
  /** Something changed that may let parked pods fit: move them (all, or those `which` picks). */
  moveAll(which?: (pod: QueuedPod) => boolean): void;
  counts(): { active: number; backoff: number; unschedulable: number; inflight: number };
  close(): void;
}

const hasPodAffinity = (pod: Pod) => (pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution.length ?? 0) > 0;
type Item = { e: Entry; gen: number };

export function createSchedulingQueue(opts: QueueOptions = {}): SchedulingQueue {
  const initial = opts.initialBackoffMs ?? 1000;
  const max = Math.max(initial, opts.maxBackoffMs ?? 10_000);
  const maxParked = opts.maxUnschedulableMs ?? 30_000;
  const now = opts.now ?? (() => performance.now());

  const entries = new Map<string, Entry>();
  const active = createHeap<Item>((a, b) => a.e.priority > b.e.priority || (a.e.priority === b.e.priority && a.e.seq < b.e.seq));
  const backoff = createHeap<Item>((a, b) => a.e.backoffUntil < b.e.backoffUntil);
  const parked = new Set<Entry>();
  const waiters: ((e: QueuedPod | undefined) => void)[] = [];
  let seq = 0;
  let moveSeq = 0;
  let closed = false;
  let backoffTimer: ReturnType<typeof setTimeout> | undefined;
  let backoffTimerDue = Infinity;
  const flushTimer = setInterval(flushParked, Math.max(100, Math.min(5000, maxParked / 2)));
  flushTimer.unref?.();

  const fresh = (it: Item) => it.gen === it.e.gen;

  function setState(e: Entry, state: EntryState): void {
    e.gen++;
    if (e.state === "unschedulable") parked.delete(e);
    e.state = state;
  }

  function takeActive(): Entry | undefined {
    for (let it = active.pop(); it; it = active.pop()) {
      if (!fresh(it)) continue;
      setState(it.e, "inflight");
      it.e.poppedAtMove = moveSeq;
      it.e.updatedInFlight = false;
      return it.e;
    }
    return undefined;
  }

  function toActive(e: Entry): void {
    setState(e, "active");
    active.push({ e, gen: e.gen });
    while (waiters.length > 0) {
      const next = takeActive();
      if (!next) return;
      waiters.shift()!(next);
    }
  }

  function toBackoff(e: Entry): void {
    if (e.backoffUntil <= now()) return toActive(e);
    setState(e, "backoff");
    backoff.push({ e, gen: e.gen });
    armBackoffTimer();
  }

  function armBackoffTimer(): void {
    while (backoff.size > 0 && !fresh(backoff.peek()!)) backoff.pop();
    const top = backoff.peek();
    if (!top || closed) return;
    if (backoffTimer && backoffTimerDue <= top.e.backoffUntil) return;
    clearTimeout(backoffTimer);
    backoffTimerDue = top.e.backoffUntil;
    backoffTimer = setTimeout(flushBackoff, Math.max(0, Math.ceil(top.e.backoffUntil - now())));
  }

  function flushBackoff(): void {
    backoffTimer = undefined;
    backoffTimerDue = Infinity;
    const t = now();
    for (let top = backoff.peek(); top && (!fresh(top) || top.e.backoffUntil <= t); top = backoff.peek()) {
      backoff.pop();
      if (fresh(top)) toActive(top.e);
    }
    armBackoffTimer();
  }

  function flushParked(): void {
    const t = now();
    for (const e of [...parked]) if (t - e.parkedAt >= maxParked) toBackoff(e);
  }

  const q: SchedulingQueue = {
    add(pod) {
      if (closed) return;
      const uid = pod.metadata?.uid ?? "";
      const existing = entries.get(uid);
      if (existing) {
        existing.key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
        return;
      }
      const e: Entry = {
        uid,
        key: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
        priority: pod.spec?.priority ?? 0,
        attempts: 0,
        queuedAt: now(),
        state: "gone",
        podAffinity: hasPodAffinity(pod),
        seq: seq++,
        gen: 0,
        backoffUntil: 0,
        parkedAt: 0,
        poppedAtMove: 0,
        updatedInFlight: false,
      };
      entries.set(uid, e);
      toActive(e);
    },
    update(pod) {
      const e = entries.get(pod.metadata?.uid ?? "");
      if (!e) return q.add(pod);
      e.priority = pod.spec?.priority ?? 0;
      e.podAffinity = hasPodAffinity(pod);
      if (e.state === "inflight") e.updatedInFlight = true;
      else if (e.state === "unschedulable") toBackoff(e);
    },
    delete(uid) {
      const e = entries.get(uid);
      if (!e) return;
      entries.delete(uid);
      setState(e, "gone");
    },
    pop(signal) {
      if (closed || signal?.aborted) return Promise.resolve(undefined);
      const e = takeActive();
      if (e) return Promise.resolve(e);
      return new Promise((resolve) => {
        const onAbort = () => {
          const i = waiters.indexOf(deliver);
          if (i >= 0) waiters.splice(i, 1);
          resolve(undefined);
        };
        const deliver = (got: QueuedPod | undefined) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(got);
        };
        waiters.push(deliver);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    failed(pod, why) {
      const e = entries.get(pod.uid);
      if (!e || e !== pod || e.state !== "inflight" || closed) return;
      e.attempts++;
      e.backoffUntil = now() + Math.min(max, initial * 2 ** (e.attempts - 1));
      if (why === "unschedulable" && e.poppedAtMove === moveSeq && !e.updatedInFlight) {
        setState(e, "unschedulable");
        e.parkedAt = now();
        parked.add(e);
      } else {
        toBackoff(e);
      }
    },
    done(uid) {
      q.delete(uid);
    },
    moveAll(which) {
      moveSeq++;
      for (const e of [...parked]) if (!which || which(e)) toBackoff(e);
    },
    counts() {
      let inflight = 0;
      let act = 0;
      let back = 0;
      for (const e of entries.values()) {
        if (e.state === "inflight") inflight++;
        else if (e.state === "active") act++;
        else if (e.state === "backoff") back++;
      }
      return { active: act, backoff: back, unschedulable: parked.size, inflight };
    },
    close() {
      closed = true;
      clearTimeout(backoffTimer);
      clearInterval(flushTimer);
      for (const w of waiters.splice(0)) w(undefined);
    },
  };
  return q;
}
