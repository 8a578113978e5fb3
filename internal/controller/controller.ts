// The shared machinery of every controller (like controller-runtime): a controller is a name and
// one reconcile(key) function; informer events are mapped to keys and queued; the work queue
// gives one worker per key, retries with backoff and delayed requeues. Controllers never hold
// state that matters only in memory: reconcile reads informers and writes through the API.
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ApiObject } from "../api/registry.ts";
import type { EventRecorder } from "../client/events.ts";
import { keyOf, type Informer, type SharedInformerFactory } from "../client/informer.ts";
import { createWorkQueue, type Result, type WorkQueue } from "../client/workqueue.ts";

export type { Result };

export interface Controller {
  name: string;
  queue: WorkQueue;
  /** Queues a key ("namespace/name", or "name" for cluster-scoped objects). */
  enqueue(key: string): void;
  /** Queues the object's own key on every add, update and delete of an informer. */
  watch<T extends ApiObject>(informer: Informer<T>, toKeys?: (obj: T) => string[]): void;
  /** Starts the workers; call after the informers synced. */
  run(workers?: number): void;
  stop(): Promise<void>;
}

export interface ControllerOptions {
  name: string;
  reconcile(key: string): Promise<Result>;
  log?: Logger;
  workers?: number;
}

/**
 * A write that lost a race (ABORTED: the object changed since the informer saw it) is expected
 * while informers catch up and is retried at once: debug, as Kubernetes logs conflicts. Anything
 * else is a warning an operator should see.
 */
export function logReconcileError(log: Logger | undefined, key: string, err: unknown): void {
  if (err instanceof ConnectError && err.code === Code.Aborted) log?.debug({ key, err: err.message }, "reconcile lost a write race; retrying");
  else log?.warn({ key, err: String(err) }, "reconcile failed; retrying");
}

export function createController(opts: ControllerOptions): Controller {
  const queue = createWorkQueue({
    name: opts.name,
    onError: (key, err) => logReconcileError(opts.log, key, err),
  });
  const unsubscribe: (() => void)[] = [];
  return {
    name: opts.name,
    queue,
    enqueue: (key) => queue.add(key),
    watch(informer, toKeys = (obj) => [keyOf(obj)]) {
      const add = (obj: any) => {
        for (const k of toKeys(obj)) queue.add(k);
      };
      unsubscribe.push(informer.onAdd(add), informer.onUpdate((_old, obj) => add(obj)), informer.onDelete(add));
    },
    run(workers = opts.workers ?? 2) {
      queue.run(workers, (key) => opts.reconcile(key));
    },
    async stop() {
      for (const u of unsubscribe.splice(0)) u();
      await queue.shutDown();
    },
  };
}

/**
 * Settings of the controllers, from the controller-manager's flags (durations in ms). Each
 * controller reads the ones it needs; `configOf(ctx)` fills in the defaults.
 */
export interface ControllerConfig {
  /** How often the node controller checks node heartbeats. --node-monitor-period */
  nodeMonitorPeriodMs: number;
  /** A node that has not reported for this long is marked NotReady/Unknown. --node-monitor-grace-period */
  nodeMonitorGracePeriodMs: number;
  /** Pods on a node that stays not ready this long are evicted. --pod-eviction-timeout */
  podEvictionTimeoutMs: number;
  /** Pod network of the cluster, split into per-node ranges. --cluster-cidr */
  clusterCidr: string;
  /** Prefix length of each node's pod range. --node-cidr-mask-size */
  nodeCidrMaskSize: number;
  /** Terminated pods kept before the oldest are deleted (0: never). --terminated-pod-gc-threshold */
  terminatedPodGcThreshold: number;
  /** Events are deleted this long after they last happened. --event-ttl */
  eventTtlMs: number;
  /** Workers per controller (reconciles of different keys at once). --concurrent-syncs */
  concurrentSyncs: number;
}

export const defaultControllerConfig: Readonly<ControllerConfig> = Object.freeze({
  nodeMonitorPeriodMs: 5_000,
  nodeMonitorGracePeriodMs: 40_000,
  podEvictionTimeoutMs: 300_000,
  clusterCidr: "10.244.0.0/16",
  nodeCidrMaskSize: 24,
  terminatedPodGcThreshold: 12_500,
  eventTtlMs: 3_600_000,
  // kube-controller-manager's --concurrent-replicaset-syncs / -deployment- / -endpoint- / -job- default.
  concurrentSyncs: 5,
});

/** What every controller gets from the controller-manager. */
export interface ControllerContext {
  transport: Transport;
  /** Shared: one informer per kind for all controllers. */
  informers: SharedInformerFactory;
  recorder: EventRecorder;
  log: Logger;
  /** Flags for the controllers; absent fields (or all, in tests) take the defaults. */
  options?: Partial<ControllerConfig>;
}

/** The controller settings of a context, defaults filled in. */
export function configOf(ctx: Pick<ControllerContext, "options">): ControllerConfig {
  const set = Object.entries(ctx.options ?? {}).filter(([, v]) => v !== undefined);
  return { ...defaultControllerConfig, ...Object.fromEntries(set) };
}

/**
 * How the controller-manager makes a controller: register informer handlers in the factory here;
 * the manager starts the informers, waits for them to sync, then calls run().
 */
export type ControllerFactory = (ctx: ControllerContext) => Controller;
