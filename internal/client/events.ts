// Events for people to read ("0/3 nodes are available: 2 Insufficient cpu"). Like client-go's
// recorder: fire and forget, and a repeat of the same event for the same object bumps its count
// instead of creating a new one.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
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
  /** Resolves when every event recorded so far was written (tests, shutdown). */
  flush(): Promise<void>;
}

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

export function createEventRecorder(opts: { transport: Transport; component: string; host?: string; log?: Logger }): EventRecorder {
  const events = createResourceClient<Event>(opts.transport, "Event");
  // Last written event per (object, reason, message), so repeats update it.
  const seen = new Map<string, Event>();
  const chains = new Map<string, Promise<void>>();

  async function write(obj: ApiObject, type: EventType, reason: string, message: string, key: string): Promise<void> {
    const prev = seen.get(key);
    if (prev) {
      const next = create(EventSchema, { ...prev, count: prev.count + 1, lastTimestamp: timestampNow() });
      try {
        seen.set(key, await events.update(next));
        return;
      } catch {
        seen.delete(key); // expired or changed: write a new one
      }
    }
    const m = obj.metadata!;
    const kind = kindForSchema({ typeName: obj.$typeName } as any);
    const now = timestampNow();
    const ev = create(EventSchema, {
      metadata: { name: eventName(m.name), namespace: m.namespace || "default" },
      involvedObject: { kind: kind?.kind ?? "", apiVersion: kind?.apiVersion ?? "", name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      reason,
      message,
      type,
      source: { component: opts.component, host: opts.host ?? "" },
      reportingComponent: opts.component,
      reportingInstance: opts.host ?? "",
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
    seen.set(key, await events.create(ev));
    if (seen.size > 4096) seen.delete(seen.keys().next().value!);
  }

  return {
    event(obj, type, reason, message) {
      const key = `${obj.metadata?.uid}/${reason}/${message}`;
      const next = (chains.get(key) ?? Promise.resolve())
        .then(() => write(obj, type, reason, message, key))
        .catch((err) => opts.log?.debug({ err: String(err), reason }, "event not recorded"));
      chains.set(key, next);
      void next.finally(() => {
        if (chains.get(key) === next) chains.delete(key);
      });
    },
    async flush() {
      await Promise.all([...chains.values()]);
    },
  };
}
