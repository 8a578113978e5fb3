// One thread's share of the watch-delivery benchmark: opens its watch streams, reports when all
// of them are established, records when each write arrives on each stream, and hands the delays
// back when told to stop. Times are wall-clock with sub-ms resolution (timeOrigin + now), which
// every thread of the process reads from the same clock.
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import type { ConfigMap } from "../gen/skiff/v1alpha1/config_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport, type ApiCredentials } from "../internal/client/transport.ts";

export interface WatchWorkerInput {
  url: string;
  /** Who the watchers are (plain strings: it crosses into a worker thread). */
  credentials: ApiCredentials;
  namespace: string;
  watchers: number;
  connections: number;
  writes: number;
}

export type WatchWorkerMessage =
  | { type: "established" }
  | { type: "complete" }
  | { type: "failed"; error: string }
  | { type: "result"; delays: Float64Array; delivered: number; duplicates: number; failedWatches: number; firstError: string | undefined };

const input = workerData as WatchWorkerInput;
const port = parentPort!;
const post = (m: WatchWorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const now = () => performance.timeOrigin + performance.now();

const clients = Array.from({ length: input.connections }, () => createResourceClient<ConfigMap>(createApiTransport(input.url, input.credentials), "ConfigMap"));
const stop = new AbortController();
// delays[w * writes + seq]: NaN until watcher w has seen write seq.
const delays = new Float64Array(input.watchers * input.writes).fill(NaN);
const expected = input.watchers * input.writes;
let delivered = 0;
let duplicates = 0;
let failedWatches = 0;
let firstError: string | undefined;
let established = 0;

async function watch(w: number): Promise<void> {
  let ready = false;
  try {
    for await (const ev of clients[w % clients.length].watch(input.namespace, { signal: stop.signal })) {
      const at = now();
      if (!ready && ev.type === "BOOKMARK") {
        ready = true;
        if (++established === input.watchers) post({ type: "established" });
        continue;
      }
      const data = ev.object.data;
      if (ev.type !== "ADDED" || data.seq === undefined) continue;
      const i = w * input.writes + Number(data.seq);
      if (!Number.isNaN(delays[i])) {
        duplicates++;
        continue;
      }
      delays[i] = at - Number(data.sentAt);
      if (++delivered === expected) post({ type: "complete" });
    }
  } catch (err) {
    if (stop.signal.aborted) return;
    failedWatches++;
    firstError ??= String(err);
    if (!ready) post({ type: "failed", error: String(err) });
  }
}

const running = Array.from({ length: input.watchers }, (_, w) => watch(w));

port.on("message", (m: { type: "stop" }) => {
  if (m.type !== "stop") return;
  stop.abort();
  void Promise.all(running).then(() => {
    post({ type: "result", delays, delivered, duplicates, failedWatches, firstError }, [delays.buffer as ArrayBuffer]);
    port.close();
  });
});
