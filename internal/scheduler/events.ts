// Events at a lower priority than binds. A burst of N pods means N "Scheduled" events, each as
// costly to the apiserver as the bind itself; written as they come, they halve bind throughput.
// So events wait in a bounded backlog and go out a few at a time (binds use many more slots),
// and under sustained overload the oldest are dropped — events are for people, like
// client-go's broadcaster, which also drops them when its buffer is full.
import type { Logger } from "pino";
import type { EventRecorder, EventType } from "../client/events.ts";
import type { ApiObject } from "../api/registry.ts";

export interface PacedRecorderOptions {
  /** Events written at once. Default 4. */
  concurrency?: number;
  /** Events waiting at most; beyond it the oldest are dropped. Default 10,000. */
  maxPending?: number;
  log?: Logger;
}

export interface PacedRecorder extends EventRecorder {
  /** Drops what has not been handed to the inner recorder yet (shutdown); returns how many. */
  discard(): number;
}

export function createPacedRecorder(inner: EventRecorder, opts: PacedRecorderOptions = {}): PacedRecorder {
  const batch = opts.concurrency ?? 4;
  const maxPending = opts.maxPending ?? 10_000;
  const pending: [ApiObject, EventType, string, string][] = [];
  let pumping: Promise<void> | undefined;
  let dropped = 0;

  // The inner recorder is fire-and-forget; its flush() tells when what was handed over is written.
  async function pump(): Promise<void> {
    while (pending.length > 0) {
      for (const e of pending.splice(0, batch)) inner.event(...e);
      await inner.flush();
    }
    if (dropped > 0) {
      opts.log?.warn({ dropped }, "events dropped: the apiserver could not keep up");
      dropped = 0;
    }
    pumping = undefined;
  }

  return {
    event(obj, type, reason, message) {
      pending.push([obj, type, reason, message]);
      if (pending.length > maxPending) {
        pending.shift();
        dropped++;
      }
      pumping ??= pump();
    },
    async flush() {
      while (pumping) await pumping;
      await inner.flush();
    },
    discard() {
      return pending.splice(0).length;
    },
  };
}
