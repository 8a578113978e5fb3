// The shared machinery of every controller (like controller-runtime): a controller is a name and
// one reconcile(key) function; informer events are mapped to keys and queued; the work queue
// gives one worker per key, retries with backoff and delayed requeues. Controllers never hold
// state that matters only in memory: reconcile reads informers and writes through the API.
import type { Transport } from "@connectrpc/connect";
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

export function createController(opts: ControllerOptions): Controller {
  const queue = createWorkQueue({
    name: opts.name,
    onError: (key, err) => opts.log?.warn({ controller: opts.name, key, err: String(err) }, "reconcile failed; retrying"),
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

/** What every controller gets from the controller-manager. */
export interface ControllerContext {
  transport: Transport;
  /** Shared: one informer per kind for all controllers. */
  informers: SharedInformerFactory;
  recorder: EventRecorder;
  log: Logger;
}

/**
 * How the controller-manager makes a controller: register informer handlers in the factory here;
 * the manager starts the informers, waits for them to sync, then calls run().
 */
export type ControllerFactory = (ctx: ControllerContext) => Controller;
