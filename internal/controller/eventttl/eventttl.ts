// Event TTL: an Event is deleted eventTtlMs after it last happened (lastTimestamp; firstTimestamp
// or creationTimestamp when absent). Kubernetes gets this from an etcd lease per event; Skiff's
// store has no TTLs, so each event key is simply re-checked when it is due (a delayed requeue in
// the work queue). A repeat of the event (count + 1, new lastTimestamp) moves its deadline, and
// the delete carries the resourceVersion it judged, so a just-repeated event is never lost.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Event } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { splitKey } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";

export interface EventTtlOptions {
  /** Default 1 h. */
  eventTtlMs: number;
  workers: number;
}

/** When the event happened last (ms), by the best timestamp it has. */
export function lastSeenMs(ev: Event): number | undefined {
  const t = ev.lastTimestamp ?? ev.firstTimestamp ?? ev.metadata?.creationTimestamp;
  return t ? timestampMs(t) : undefined;
}

export function createEventTtlController(ctx: ControllerContext, overrides: Partial<EventTtlOptions> = {}): Controller {
  const ttl = overrides.eventTtlMs ?? ctx.options?.eventTtlMs ?? 3_600_000;
  const log = ctx.log;
  const events = ctx.informers.informerFor<Event>("Event");
  const client = createResourceClient<Event>(ctx.transport, "Event");
  const controller = createController({ name: "event-ttl", log, workers: overrides.workers ?? 1, reconcile });
  controller.watch(events);

  async function reconcile(key: string): Promise<Result> {
    const ev = events.get(key);
    if (!ev?.metadata) return;
    const seen = lastSeenMs(ev);
    const due = (seen ?? Date.now()) + ttl;
    const wait = due - Date.now();
    if (wait > 0) return { requeueAfterMs: wait };
    const { namespace, name } = splitKey(key);
    try {
      await client.delete(namespace, name, { uid: ev.metadata.uid, resourceVersion: ev.metadata.resourceVersion });
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code === Code.NotFound) return;
      // Changed since the cache saw it (a repeat): its update event queues the key again.
      if (code === Code.Aborted) return;
      throw err;
    }
  }

  return controller;
}
