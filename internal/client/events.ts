// Events for people to read ("0/3 nodes are available: 2 Insufficient cpu"). Like client-go's
// recorder and its EventCorrelator:
//   - fire and forget: event() never waits; writes go out from a bounded queue, a few at a time,
//     and when the queue is full an event is dropped and counted (a slow apiserver must not stall
//     the controller that reports, nor grow its memory) — the new one by default, as client-go
//     does, or the oldest when the caller would rather report what happens now (the scheduler);
//   - a repeat of the same event (object, type, reason, message) bumps the count of the one
//     already written instead of creating another; repeats waiting in the queue share one write;
//   - more than 10 events of one object and reason that differ only in their message within 10
//     minutes (a ReplicaSet creating 100 pods) become one "(combined from similar events): …"
//     event whose count goes up;
//   - each object may get 25 events from a source at once, then one per 5 minutes (a token
//     bucket per source and object), so a flapping object cannot flood the apiserver and etcd.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import { EventSchema, type Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { ApiObject } from "../api/registry.ts";
import { kindForSchema } from "../api/registry.ts";
import { createResourceClient } from "./resource-client.ts";

export type EventType = "Normal" | "Warning";

export interface EventRecorder {
  /** Records an event about obj; never throws, never waits. */
  event(obj: ApiObject, type: EventType, reason: string, message: string): void;
  /** Resolves when every event recorded so far was written or given up (tests, shutdown). */
  flush(): Promise<void>;
}

export interface EventRecorderStats {
  /** Create and update calls that succeeded. */
  written: number;
  /** Events not queued because the queue was full, or discarded at shutdown. */
  dropped: number;
  /** Events refused by the per-object rate limit (burst 25, then one per 5 minutes). */
  throttled: number;
  /** Writes the apiserver refused or that failed in transit. */
  failed: number;
}

export interface CorrelatingEventRecorder extends EventRecorder {
  /** Drops the writes still waiting in the queue (shutdown); returns how many. */
  discard(): number;
  stats(): EventRecorderStats;
}

export interface EventRecorderOptions {
  transport: Transport;
  component: string;
  host?: string;
  log?: Logger;
  /** Writes in flight at once. Default 4: events yield to the work they report on. */
  concurrency?: number;
  /** Writes waiting at most. Default 1000 (client-go's queue). */
  maxQueued?: number;
  /** What a full queue drops: the event being recorded ("newest", default) or the oldest waiting. */
  dropWhenFull?: "newest" | "oldest";
  /** Milliseconds since the epoch (tests). Default Date.now. */
  now?: () => number;
}

// client-go's defaults (tools/record).
const CACHE_ENTRIES = 4096;
const AGGREGATE_AFTER = 10;
const AGGREGATE_WINDOW_MS = 600_000;
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 300_000;
export const COMBINED_PREFIX = "(combined from similar events): ";

// Events of one object written within the same millisecond (a ReplicaSet creating a batch of pods)
// must not share a name: the apiserver would refuse all but one. Within a process a counter tells
// them apart; the random part, those of other components about the same object.
let sequence = 0;
const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** A new event's name: the object's name, the time, a per-process sequence and a random part. */
export function eventName(objectName: string, nowMs = Date.now()): string {
  sequence = (sequence + 1) & 0xffff;
  return `${objectName}.${nowMs.toString(16)}${hex(sequence, 4)}${hex(randomInt(0x10000), 4)}`;
}

/** A Map that forgets its least recently used entry beyond `max` entries. */
function lru<V>(max: number) {
  const map = new Map<string, V>();
  return {
    get(key: string): V | undefined {
      const v = map.get(key);
      if (v !== undefined) {
        map.delete(key);
        map.set(key, v);
      }
      return v;
    },
    set(key: string, v: V): void {
      map.delete(key);
      map.set(key, v);
      if (map.size > max) map.delete(map.keys().next().value!);
    },
  };
}

/** One event as written: the latest count and message, and what the apiserver returned. */
interface Observed {
  event: Event;
  stored?: Event;
  queued: boolean;
  writing: boolean;
  /** Changed since its last write started. */
  dirty: boolean;
}

export function createEventRecorder(opts: EventRecorderOptions): CorrelatingEventRecorder {
  const events = createResourceClient<Event>(opts.transport, "Event");
  const now = opts.now ?? Date.now;
  const concurrency = opts.concurrency ?? 4;
  const maxQueued = opts.maxQueued ?? 1000;
  const dropOldest = opts.dropWhenFull === "oldest";
  const source = { component: opts.component, host: opts.host ?? "" };
  const sourceKey = `${source.component}\x00${source.host}`;
  const observed = lru<Observed>(CACHE_ENTRIES);
  const similar = lru<{ messages: Set<string>; lastMs: number }>(CACHE_ENTRIES);
  const buckets = lru<{ tokens: number; atMs: number }>(CACHE_ENTRIES);
  const queue: Observed[] = [];
  const counters: EventRecorderStats = { written: 0, dropped: 0, throttled: 0, failed: 0 };
  let inFlight = 0;
  let warnedAtMs = -Infinity;
  let idle: { promise: Promise<void>; resolve: () => void } | undefined;

  /** The per-object token bucket: false when this source already said too much about obj. */
  function allowed(objectKey: string, ms: number): boolean {
    const b = buckets.get(objectKey) ?? { tokens: SPAM_BURST, atMs: ms };
    b.tokens = Math.min(SPAM_BURST, b.tokens + (ms - b.atMs) / SPAM_REFILL_MS);
    b.atMs = ms;
    buckets.set(objectKey, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** The message to write and the key that identifies the event it updates (aggregation). */
  function aggregate(objectKey: string, type: string, reason: string, message: string, ms: number): [key: string, message: string] {
    const groupKey = `${objectKey}\x00${type}\x00${reason}`;
    let group = similar.get(groupKey);
    if (!group || ms - group.lastMs > AGGREGATE_WINDOW_MS) group = { messages: new Set(), lastMs: ms };
    group.messages.add(message);
    group.lastMs = ms;
    similar.set(groupKey, group);
    if (group.messages.size < AGGREGATE_AFTER) return [`${groupKey}\x00${message}`, message];
    // Keep the set at its threshold: every further new message is aggregated too.
    group.messages.delete(group.messages.values().next().value!);
    return [groupKey, COMBINED_PREFIX + message];
  }

  function newEvent(obj: ApiObject, type: EventType, reason: string, message: string, ms: number): Event {
    const m = obj.metadata!;
    const kind = kindForSchema({ typeName: obj.$typeName } as any);
    const ts = timestampFromMs(ms);
    return create(EventSchema, {
      metadata: { name: eventName(m.name, ms), namespace: m.namespace || "default" },
      involvedObject: { kind: kind?.kind ?? "", apiVersion: kind?.apiVersion ?? "", name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      reason,
      message,
      type,
      source,
      reportingComponent: source.component,
      reportingInstance: source.host,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    });
  }

  /** Counts a dropped event; says so in the log at most once a minute. */
  function drop(): void {
    counters.dropped++;
    const ms = now();
    if (ms - warnedAtMs < 60_000) return;
    warnedAtMs = ms;
    opts.log?.warn({ dropped: counters.dropped, queued: queue.length }, "events dropped: the apiserver is not keeping up with them");
  }

  function enqueue(o: Observed): boolean {
    if (o.queued || o.writing) return true; // the pending write (or the one after it) carries this
    if (queue.length >= maxQueued) {
      if (!dropOldest || maxQueued <= 0) return false;
      queue.shift()!.queued = false;
      drop();
    }
    o.queued = true;
    queue.push(o);
    pump();
    return true;
  }

  function pump(): void {
    while (inFlight < concurrency && queue.length > 0) {
      const o = queue.shift()!;
      o.queued = false;
      o.writing = true;
      o.dirty = false;
      inFlight++;
      void write(o).finally(() => {
        inFlight--;
        o.writing = false;
        if (o.dirty && !enqueue(o)) drop();
        pump();
        if (inFlight === 0 && queue.length === 0 && idle) {
          idle.resolve();
          idle = undefined;
        }
      });
    }
  }

  async function write(o: Observed): Promise<void> {
    const ev = o.event;
    try {
      if (o.stored) {
        const next = create(EventSchema, { ...o.stored, count: ev.count, message: ev.message, lastTimestamp: ev.lastTimestamp });
        try {
          o.stored = await events.update(next);
          counters.written++;
          return;
        } catch {
          // Deleted (event TTL) or changed by someone else: start a new one, as client-go does.
          o.stored = undefined;
          ev.metadata!.name = eventName(ev.involvedObject!.name, now());
          ev.count = 1;
          ev.firstTimestamp = ev.lastTimestamp;
        }
      }
      o.stored = await events.create(ev);
      counters.written++;
    } catch (err) {
      counters.failed++;
      opts.log?.debug({ err: String(err), reason: ev.reason }, "event not recorded");
    }
  }

  return {
    event(obj, type, reason, message) {
      const m = obj.metadata;
      if (!m) return;
      const ms = now();
      const objectKey = `${sourceKey}\x00${obj.$typeName}\x00${m.namespace}\x00${m.name}\x00${m.uid}`;
      const [key, text] = aggregate(objectKey, type, reason, message, ms);
      if (!allowed(objectKey, ms)) {
        counters.throttled++;
        return;
      }
      let o = observed.get(key);
      if (o) {
        o.event.count++;
        o.event.message = text;
        o.event.lastTimestamp = timestampFromMs(ms);
      } else {
        o = { event: newEvent(obj, type, reason, text, ms), queued: false, writing: false, dirty: false };
        observed.set(key, o);
      }
      o.dirty = true;
      if (!enqueue(o)) drop();
    },
    flush() {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve();
      if (!idle) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        idle = { promise, resolve };
      }
      return idle.promise;
    },
    discard() {
      const n = queue.length;
      for (const o of queue.splice(0)) o.queued = false;
      counters.dropped += n;
      if (inFlight === 0 && idle) {
        idle.resolve();
        idle = undefined;
      }
      return n;
    },
    stats: () => ({ ...counters }),
  };
}
