// The scheduler: informers feed the cache and the queue; one loop pops a pod, decides with the
// pure core against the cache's snapshot, assumes the pod on its node, and hands the bind to a
// bounded pool so that the next decision starts while binds are in flight. See README.md.
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import { setTimeout as delay, setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createEventRecorder, type CorrelatingEventRecorder } from "../client/events.ts";
import { createSharedInformerFactory, type Informer, type SharedInformerFactory } from "../client/informer.ts";
import { createPodBinder, createResourceClient } from "../client/resource-client.ts";
import { createSchedulerCache } from "./cache.ts";
import { createVolumeBinding } from "./volume-binding.ts";
import type { FilterPlugin, ScorePlugin } from "./core/framework.ts";
import { isTerminal, podInfoOf } from "./core/pod-info.ts";
import { createNodeRotation, isScheduled } from "./core/schedule.ts";
import { createPool } from "./pool.ts";
import { createSchedulingQueue, type QueuedPod } from "./queue.ts";
import { createConditionWriter } from "./status.ts";
import { defaultFilters, defaultScorers } from "./core/plugins/index.ts";
import type { SchedulerMetrics } from "./metrics.ts";

export const DEFAULT_SCHEDULER_NAME = "default-scheduler";
/** How long the loop decides before it lets other work run. */
const SLICE_MS = 10;
/** Events written at once, and waiting at most (see `recorder` below). */
const EVENT_CONCURRENCY = 4;
const MAX_QUEUED_EVENTS = 10_000;

export const DEFAULT_BIND_CONCURRENCY = 128;

export interface SchedulerOptions {
  transport: Transport;
  log?: Logger;
  /**
   * Where Scheduled / FailedScheduling events go. Default: a recorder for the scheduler's name
   * that writes 4 at a time behind the binds and, beyond 10,000 waiting, drops the oldest.
   */
  recorder?: CorrelatingEventRecorder;
  /**
   * Share informers with other components in the process. The caller starts (and stops) the
   * factory; without one the scheduler makes, starts and stops its own.
   */
  informers?: SharedInformerFactory;
  /** Pods whose spec.schedulerName is this (or empty) are ours. Default "default-scheduler". */
  schedulerName?: string;
  /** Retry delay of a pod that did not fit: initialMs doubling to maxMs. Default 1 s → 10 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** A pod parked as unschedulable is retried after this long even without an event. Default 30 s. */
  maxUnschedulableMs?: number;
  /**
   * Binds in flight at once. Default 128. kube-scheduler runs each binding in its own goroutine,
   * unbounded; this bound keeps a stalled apiserver from collecting unbounded calls. 32 capped
   * binding near 210/s once the apiserver's answers took ~150 ms under load (bench scale).
   */
  bindConcurrency?: number;
  /** An assumed pod whose bind succeeded but which the informer never showed bound is dropped after this. Default 30 s. */
  assumeTtlMs?: number;
  filters?: readonly FilterPlugin[];
  scorers?: readonly ScorePlugin[];
  /** Tie-breaking randomness. Default Math.random. */
  rng?: () => number;
  /** kube-scheduler's percentageOfNodesToScore (schedule.ts): 0 = adaptive (default), 100 = every node. */
  percentageOfNodesToScore?: number;
  /** Prometheus metrics (metrics.ts); none when absent. */
  metrics?: SchedulerMetrics;
}

export interface SchedulerStats {
  /** Scheduling decisions made. */
  attempts: number;
  /** Pods bound by this scheduler. */
  bound: number;
  /** Decisions that found no node. */
  unschedulable: number;
  /** Binds refused because the pod was bound, replaced or deleted meanwhile. */
  bindConflicts: number;
  /** Binds that failed otherwise (retried). */
  bindErrors: number;
  queue: { active: number; backoff: number; unschedulable: number; inflight: number };
  cache: { nodes: number; pods: number; assumed: number };
}

export interface Scheduler {
  /** Starts the informers (unless shared), waits for them to sync, starts the loop. Aborting `signal` stops it. */
  start(signal?: AbortSignal): Promise<void>;
  /** Stops the loop, waits for binds in flight, stops own informers. */
  stop(): Promise<void>;
  stats(): SchedulerStats;
}

export function createScheduler(opts: SchedulerOptions): Scheduler {
  const percentage = opts.percentageOfNodesToScore ?? 0;
  if (!Number.isInteger(percentage) || percentage < 0 || percentage > 100) {
    throw new RangeError(`percentageOfNodesToScore must be an integer from 0 (adaptive) to 100 (every node), got ${percentage}`);
  }
  const log = opts.log;
  const schedulerName = opts.schedulerName ?? DEFAULT_SCHEDULER_NAME;
  const ownFactory = !opts.informers;
  const factory = opts.informers ?? createSharedInformerFactory(opts.transport, { log });
  // A burst of N pods means N "Scheduled" events, each as costly to the apiserver as the bind:
  // they go out a few at a time (binds use 32 slots), and under sustained overload the oldest
  // are dropped — the latest say more about what the scheduler is doing now.
  const recorder =
    opts.recorder ??
    createEventRecorder({ transport: opts.transport, component: schedulerName, log, concurrency: EVENT_CONCURRENCY, maxQueued: MAX_QUEUED_EVENTS, dropWhenFull: "oldest" });
  const bindPod = createPodBinder(opts.transport);
  const pods: Informer<Pod> = factory.informerFor<Pod>("Pod");
  const nodes: Informer<Node> = factory.informerFor<Node>("Node");
  const cache = createSchedulerCache({ assumeTtlMs: opts.assumeTtlMs });
  const volumeBinding = createVolumeBinding({ transport: opts.transport, informers: factory });
  const filters = opts.filters ?? [...defaultFilters, volumeBinding.filter];
  const queue = createSchedulingQueue({
    initialBackoffMs: opts.backoff?.initialMs,
    maxBackoffMs: opts.backoff?.maxMs,
    maxUnschedulableMs: opts.maxUnschedulableMs,
  });
  const binds = createPool(opts.bindConcurrency ?? DEFAULT_BIND_CONCURRENCY);
  const conditions = createConditionWriter({ pods: createResourceClient<Pod>(opts.transport, "Pod"), getPod: (k) => pods.get(k), log });
  const counters = { attempts: 0, bound: 0, unschedulable: 0, bindConflicts: 0, bindErrors: 0 };
  const metrics = opts.metrics;
  metrics?.pendingFrom(() => queue.counts());
  const sinceMs = (start: number) => (performance.now() - start) / 1000;
  const abort = new AbortController();
  const unsubscribe: (() => void)[] = [];
  let loop: Promise<void> | undefined;
  let expiryTimer: ReturnType<typeof setInterval> | undefined;
  let started = false;
  let stopping: Promise<void> | undefined;

  const isOurs = (p: Pod) => {
    const name = p.spec?.schedulerName ?? "";
    return name === "" || name === schedulerName;
  };
  const needsScheduling = (p: Pod) => (p.spec?.nodeName ?? "") === "" && isOurs(p) && !p.metadata?.deletionTimestamp && !isTerminal(p);
  const uidOf = (p: Pod) => p.metadata?.uid ?? "";
  const specOrLabelsChanged = (a: Pod, b: Pod) =>
    a.metadata?.generation !== b.metadata?.generation || JSON.stringify(a.metadata?.labels) !== JSON.stringify(b.metadata?.labels);

  // ---- informer events → cache and queue ----
  function watchPods(): void {
    unsubscribe.push(
      pods.onAdd((p) => {
        if (p.spec?.nodeName) {
          cache.upsertPod(p);
          // A pod placed by someone else may be what a pod with required affinity waits for.
          queue.moveAll((q) => q.podAffinity);
        } else if (needsScheduling(p)) queue.add(p);
      }),
      pods.onUpdate((old, p) => {
        if (p.spec?.nodeName) {
          if (!old.spec?.nodeName) queue.delete(uidOf(p));
          if (cache.upsertPod(p)) queue.moveAll();
        } else if (!needsScheduling(p)) {
          queue.delete(uidOf(p));
        } else if (!cache.isAssumed(uidOf(p))) {
          if (specOrLabelsChanged(old, p)) queue.update(p);
          else queue.add(p);
        }
      }),
      pods.onDelete((p) => {
        queue.delete(uidOf(p));
        if (cache.removePod(uidOf(p))) queue.moveAll();
      }),
    );
  }

  function watchNodes(): void {
    unsubscribe.push(
      nodes.onAdd((n) => {
        cache.setNode(n);
        queue.moveAll();
      }),
      nodes.onUpdate((_old, n) => {
        // Heartbeats change nothing scheduling reads: only real changes wake parked pods.
        if (cache.setNode(n)) queue.moveAll();
      }),
      nodes.onDelete((n) => cache.removeNode(n.metadata?.name ?? "")),
    );
  }

  // ---- the loop ----
  async function bind(pod: Pod, nodeName: string, entry: QueuedPod, started: number): Promise<void> {
    const m = pod.metadata!;
    try {
      await volumeBinding.selectNode(pod, nodeName);
      await bindPod({ namespace: m.namespace, name: m.name, nodeName, uid: m.uid }, { timeoutMs: 30_000 });
      cache.finishBinding(m.uid);
      queue.done(m.uid);
      counters.bound++;
      metrics?.attempt("scheduled", sinceMs(started));
      metrics?.scheduled(sinceMs(entry.queuedAt), entry.attempts + 1);
      recorder.event(pod, "Normal", "Scheduled", `Successfully assigned ${m.namespace}/${m.name} to ${nodeName}`);
    } catch (err) {
      if (cache.forget(m.uid)) queue.moveAll();
      metrics?.attempt("error", sinceMs(started));
      const e = ConnectError.from(err);
      if (e.code === Code.FailedPrecondition || e.code === Code.NotFound || e.code === Code.Aborted) {
        // Bound by someone else, being deleted, gone, or replaced by a new pod of that name.
        counters.bindConflicts++;
        log?.debug({ pod: `${m.namespace}/${m.name}`, node: nodeName, err: e.rawMessage }, "bind refused; skipping the pod");
        queue.done(m.uid);
      } else {
        counters.bindErrors++;
        log?.warn({ pod: `${m.namespace}/${m.name}`, node: nodeName, err: e.message }, "bind failed; retrying after backoff");
        queue.failed(entry, "error");
      }
    }
  }

  // The next pod's search starts where this one's stopped, so every node gets looked at.
  const rotation = createNodeRotation();

  async function scheduleOne(entry: QueuedPod): Promise<void> {
    const pod = pods.get(entry.key);
    if (!pod || uidOf(pod) !== entry.uid || !needsScheduling(pod) || cache.isAssumed(entry.uid)) {
      queue.done(entry.uid);
      return;
    }
    counters.attempts++;
    const started = performance.now();
    const info = podInfoOf(pod);
    const snapshot = cache.snapshot();
    const plugins = metrics?.plugins(filters, opts.scorers ?? defaultScorers);
    const result = rotation.schedule(info, snapshot, {
      filters: plugins?.filters ?? filters,
      scorers: plugins?.scorers ?? opts.scorers,
      rng: opts.rng,
      percentageOfNodesToScore: opts.percentageOfNodesToScore,
    });
    plugins?.done();
    if (isScheduled(result)) {
      cache.assume(info, result.node);
      await binds.run(() => bind(pod, result.node, entry, started));
      return;
    }
    counters.unschedulable++;
    metrics?.attempt("unschedulable", sinceMs(started));
    log?.debug({ pod: entry.key, reason: result.message }, "pod does not fit");
    queue.failed(entry, "unschedulable");
    recorder.event(pod, "Warning", "FailedScheduling", result.message);
    conditions.unschedulable(pod, result.message);
  }

  async function run(signal: AbortSignal): Promise<void> {
    let sliceStart = performance.now();
    for (;;) {
      const entry = await queue.pop(signal);
      if (!entry || signal.aborted) return;
      try {
        await scheduleOne(entry);
      } catch (err) {
        log?.error({ pod: entry.key, err: String(err) }, "scheduling attempt failed");
        metrics?.attempt("error", 0);
        queue.failed(entry, "error");
      }
      // A burst of ready pods runs as one chain of microtasks: after a time slice, let informer
      // events and bind responses in. (Yielding after every pod would allow one decision per
      // event-loop turn — a few ms each when the apiserver shares the process.) A full bind
      // pool also waits for I/O, so the pool's size is the real bound on how far we run ahead.
      if (performance.now() - sliceStart >= SLICE_MS) {
        await yieldToEventLoop();
        sliceStart = performance.now();
      }
    }
  }

  const scheduler: Scheduler = {
    async start(signal) {
      if (started) throw new Error("scheduler already started");
      started = true;
      if (signal) {
        if (signal.aborted) return scheduler.stop();
        signal.addEventListener("abort", () => void scheduler.stop(), { once: true });
      }
      watchNodes();
      watchPods();
      // A claim, volume or class that changes may let a waiting pod fit.
      unsubscribe.push(volumeBinding.onChange(() => queue.moveAll()));
      if (ownFactory) factory.start(abort.signal);
      await Promise.all([pods.waitForSync(abort.signal), nodes.waitForSync(abort.signal), volumeBinding.waitForSync(abort.signal)]).catch((err) => {
        if (!abort.signal.aborted) throw err;
      });
      if (abort.signal.aborted) return;
      expiryTimer = setInterval(() => {
        if (cache.expireAssumed() > 0) queue.moveAll();
      }, 1000);
      expiryTimer.unref?.();
      const pending = Object.values(queue.counts()).reduce((a, b) => a + b, 0);
      log?.info({ schedulerName, nodes: nodes.list().length, pending }, "scheduler started");
      loop = run(abort.signal);
    },
    stop() {
      stopping ??= (async () => {
        abort.abort();
        queue.close();
        clearInterval(expiryTimer);
        await loop;
        await binds.idle();
        for (const u of unsubscribe.splice(0)) u();
        await conditions.shutDown();
        if (ownFactory) await factory.stop();
        // Events still waiting get a moment, not a say in how long shutdown takes.
        const timer = new AbortController();
        await Promise.race([recorder.flush(), delay(2000, undefined, { signal: timer.signal }).catch(() => {})]);
        timer.abort();
        const dropped = recorder.discard();
        if (dropped > 0) log?.info({ dropped }, "events not written at shutdown");
      })();
      return stopping;
    },
    stats: () => ({ ...counters, queue: queue.counts(), cache: cache.stats() }),
  };
  return scheduler;
}
