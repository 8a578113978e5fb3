// WorkQueue: the queue every controller reconciles from. Semantics follow client-go's
// rate-limited delaying workqueue, with the worker loop built in (controller-runtime style):
//
//   add ──► waiting (FIFO, deduped) ──► worker: handler(key) ──► result ──► done
//     ▲          ▲                                 │                          │
//     │          └──── dirty (added while running) ◄┘ re-queued once on done ◄┘
//   addAfter / addRateLimited ──► delayed (one timer per key, earliest wins) ──► add
//
// Vocabulary: "waiting" keys are queued and not running; "processing" keys have a handler running;
// "dirty" keys were added while processing and go back to waiting when their handler finishes;
// "delayed" keys are timers that will add the key later.

import {
  createDefaultControllerRateLimiter,
  DEFAULT_BASE_DELAY_MS,
  DEFAULT_BURST,
  DEFAULT_MAX_DELAY_MS,
  DEFAULT_QPS,
} from "./ratelimit.ts";
import type { RateLimiter } from "./ratelimit.ts";

export type { RateLimiter } from "./ratelimit.ts";

/**
 * What a reconcile handler returns. Throwing or `requeue: true` retries with backoff;
 * `requeueAfterMs` (any number, 0 = now) checks again after that delay and resets the backoff;
 * returning nothing (or `{}`) is success and resets the backoff.
 */
export type Result = { requeue?: boolean; requeueAfterMs?: number } | void;

export type Handler<K extends string> = (key: K) => Promise<Result> | Result;

/** Hooks for metrics; the queue's name is passed so one adapter can label many queues. */
export interface WorkQueueMetrics {
  /** A key newly became waiting or dirty (repeated adds of a queued key do not count). */
  added?(queue: string): void;
  /** Number of waiting keys, after every change. */
  depth?(queue: string, depth: number): void;
  /** From a key being queued to a worker picking it up. */
  queueLatencyMs?(queue: string, ms: number): void;
  /** How long a handler ran. */
  workDurationMs?(queue: string, ms: number): void;
  /** addRateLimited was called (a retry). */
  retried?(queue: string): void;
  /** A handler finished: returned nothing, threw, asked to requeue, or asked to check again later. */
  handled?(queue: string, outcome: "success" | "error" | "requeue" | "requeue_after"): void;
  /** Called once per queue: reads the handlers running now (total and longest time so far). */
  track?(queue: string, inFlight: () => { totalMs: number; longestMs: number }): void;
}

// Queues made without `metrics` report here (client-go's global metrics provider): the process
// sets it once, so no controller has to pass it along.
let defaultMetrics: WorkQueueMetrics | undefined;
/** Where queues created without their own `metrics` report from now on (undefined: nowhere). */
export function setDefaultWorkQueueMetrics(m: WorkQueueMetrics | undefined): void {
  defaultMetrics = m;
}

export interface WorkQueueOptions<K extends string = string> {
  /** Names the queue in metrics. Default "workqueue". */
  name?: string;
  /** Per-key exponential backoff: first retry delay. Default 5 ms. */
  baseDelayMs?: number;
  /** Per-key exponential backoff: largest delay. Default 1000 s. */
  maxDelayMs?: number;
  /** Overall retry rate across keys. Default 10/s; Infinity disables it. */
  qps?: number;
  /** Overall retry burst. Default 100. */
  burst?: number;
  /** Replaces the backoff/bucket limiter built from the four options above. */
  rateLimiter?: RateLimiter<K>;
  /** Called when a handler throws (the key is retried with backoff either way). */
  onError?: (key: K, err: unknown) => void;
  metrics?: WorkQueueMetrics;
  /** Monotonic clock in ms; injectable for tests. Default performance.now. */
  now?: () => number;
}

export interface WorkQueue<K extends string = string> {
  /** Queue `key`. A waiting key is queued once; a key being processed runs once more after. */
  add(key: K): void;
  /** Queue `key` after `delayMs`. If the key is already delayed, the earlier time wins. */
  addAfter(key: K, delayMs: number): void;
  /** Queue `key` after its backoff (per-key exponential, combined with an overall bucket). */
  addRateLimited(key: K): void;
  /** Reset the key's backoff (done automatically when a handler succeeds). */
  forget(key: K): void;
  /** Retries of `key` since it was last forgotten. */
  numRequeues(key: K): number;
  /** Waiting keys (not processing, not delayed). */
  len(): number;
  /** Start `workers` concurrent handlers. One key never runs in two handlers at once. */
  run(workers: number, handler: Handler<K>): void;
  /** Stop accepting keys, drop waiting and delayed ones, resolve once in-flight handlers finish. */
  shutDown(): Promise<void>;
  /** Resolves when nothing is waiting, delayed or in flight. */
  onIdle(): Promise<void>;
}

// setTimeout overflows above this (and would fire after 1 ms), so longer delays are chained.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

interface Delayed {
  dueAt: number;
  timer: ReturnType<typeof setTimeout>;
}

export function createWorkQueue<K extends string = string>(
  opts: WorkQueueOptions<K> = {},
): WorkQueue<K> {
  const name = opts.name ?? "workqueue";
  const now = opts.now ?? (() => performance.now());
  const metrics = opts.metrics ?? defaultMetrics ?? {};
  const limiter =
    opts.rateLimiter ??
    createDefaultControllerRateLimiter<K>({
      baseDelayMs: opts.baseDelayMs ?? DEFAULT_BASE_DELAY_MS,
      maxDelayMs: opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
      qps: opts.qps ?? DEFAULT_QPS,
      burst: opts.burst ?? DEFAULT_BURST,
      now,
    });

  // A Set keeps insertion order, so it is both the FIFO and the dedupe index.
  const waiting = new Set<K>();
  // Keys being handled, with when their handler started (for the in-flight metrics).
  const processing = new Map<K, number>();
  const dirty = new Set<K>();
  const delayed = new Map<K, Delayed>();
  const queuedAt = new Map<K, number>();

  let handler: Handler<K> | undefined;
  let workers = 0;
  let shuttingDown = false;
  let pumpScheduled = false;
  let idleWaiters: (() => void)[] = [];
  let drainWaiters: (() => void)[] = [];

  const safe = (fn: () => void): void => {
    // A broken metrics or error hook must not wedge the queue.
    try {
      fn();
    } catch {
      /* ignored */
    }
  };

  const markQueued = (key: K): void => {
    if (metrics.added) safe(() => metrics.added!(name));
    if (metrics.queueLatencyMs && !queuedAt.has(key)) queuedAt.set(key, now());
  };

  const reportDepth = (): void => {
    if (metrics.depth) safe(() => metrics.depth!(name, waiting.size));
  };

  const isIdle = (): boolean => waiting.size === 0 && delayed.size === 0 && processing.size === 0;

  const settle = (): void => {
    if (idleWaiters.length > 0 && isIdle()) {
      const ws = idleWaiters;
      idleWaiters = [];
      for (const w of ws) w();
    }
    if (drainWaiters.length > 0 && processing.size === 0) {
      const ws = drainWaiters;
      drainWaiters = [];
      for (const w of ws) w();
    }
  };

  // Dispatch on a microtask, so that adds made in one synchronous burst are deduped before any
  // worker takes the key.
  const schedulePump = (): void => {
    if (pumpScheduled || !handler || shuttingDown) return;
    pumpScheduled = true;
    void Promise.resolve().then(() => {
      pumpScheduled = false;
      pump();
    });
  };

  const pump = (): void => {
    while (!shuttingDown && handler && processing.size < workers && waiting.size > 0) {
      const key = waiting.values().next().value as K;
      waiting.delete(key);
      processing.set(key, now());
      void work(key, handler);
    }
    reportDepth();
  };

  const work = async (key: K, h: Handler<K>): Promise<void> => {
    const start = processing.get(key) ?? now();
    const since = queuedAt.get(key);
    if (since !== undefined) {
      queuedAt.delete(key);
      safe(() => metrics.queueLatencyMs!(name, start - since));
    }
    try {
      const result = await h(key);
      if (result && typeof result.requeueAfterMs === "number") {
        // A planned re-check is not a failure: start the backoff over.
        limiter.forget(key);
        if (metrics.handled) safe(() => metrics.handled!(name, "requeue_after"));
        q.addAfter(key, result.requeueAfterMs);
      } else if (result && result.requeue) {
        if (metrics.handled) safe(() => metrics.handled!(name, "requeue"));
        q.addRateLimited(key);
      } else {
        limiter.forget(key);
        if (metrics.handled) safe(() => metrics.handled!(name, "success"));
      }
    } catch (err) {
      if (metrics.handled) safe(() => metrics.handled!(name, "error"));
      if (opts.onError) safe(() => opts.onError!(key, err));
      q.addRateLimited(key);
    } finally {
      if (metrics.workDurationMs) safe(() => metrics.workDurationMs!(name, now() - start));
      processing.delete(key);
      if (dirty.delete(key) && !shuttingDown) waiting.add(key);
      pump();
      settle();
    }
  };

  const schedule = (key: K, dueAt: number): void => {
    const wait = Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(dueAt - now())));
    // Not unref'd: a pending retry is real work, and an unref'd timer lets a script awaiting
    // onIdle() exit silently mid-backoff. shutDown clears every timer instead.
    const timer = setTimeout(() => fire(key), wait);
    delayed.set(key, { dueAt, timer });
  };

  const fire = (key: K): void => {
    const entry = delayed.get(key);
    if (!entry) return;
    // Chained long delays, and timers that fire a hair early against our clock, wait the rest.
    if (now() < entry.dueAt) {
      schedule(key, entry.dueAt);
      return;
    }
    delayed.delete(key);
    q.add(key);
    settle();
  };

  if (metrics.track) {
    safe(() =>
      metrics.track!(name, () => {
        const t = now();
        let totalMs = 0;
        let longestMs = 0;
        for (const since of processing.values()) {
          totalMs += t - since;
          if (t - since > longestMs) longestMs = t - since;
        }
        return { totalMs, longestMs };
      }),
    );
  }

  const q: WorkQueue<K> = {
    add(key) {
      if (shuttingDown) return;
      if (processing.has(key)) {
        if (!dirty.has(key)) {
          dirty.add(key);
          markQueued(key);
        }
        return;
      }
      if (waiting.has(key)) return;
      waiting.add(key);
      markQueued(key);
      reportDepth();
      schedulePump();
    },

    addAfter(key, delayMs) {
      if (shuttingDown) return;
      if (!(delayMs > 0)) {
        q.add(key);
        return;
      }
      const dueAt = now() + delayMs;
      const existing = delayed.get(key);
      if (existing) {
        if (existing.dueAt <= dueAt) return;
        clearTimeout(existing.timer);
      }
      schedule(key, dueAt);
    },

    addRateLimited(key) {
      if (shuttingDown) return;
      if (metrics.retried) safe(() => metrics.retried!(name));
      q.addAfter(key, limiter.when(key));
    },

    forget(key) {
      limiter.forget(key);
    },

    numRequeues(key) {
      return limiter.numRequeues(key);
    },

    len() {
      return waiting.size;
    },

    run(n, h) {
      if (handler) throw new Error(`workqueue ${name}: run called twice`);
      if (!Number.isInteger(n) || n < 1) {
        throw new RangeError(`workqueue ${name}: workers must be an integer >= 1 (got ${n})`);
      }
      handler = h;
      workers = n;
      schedulePump();
    },

    shutDown() {
      if (!shuttingDown) {
        shuttingDown = true;
        for (const { timer } of delayed.values()) clearTimeout(timer);
        delayed.clear();
        waiting.clear();
        dirty.clear();
        queuedAt.clear();
        reportDepth();
      }
      const drained = new Promise<void>((resolve) => drainWaiters.push(resolve));
      settle();
      return drained;
    },

    onIdle() {
      const idle = new Promise<void>((resolve) => idleWaiters.push(resolve));
      settle();
      return idle;
    },
  };

  return q;
}
