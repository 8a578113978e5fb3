// Watch delivery: many concurrent watch streams on ConfigMaps, then writes spaced apart; for each
// write, the delay from just before its Create call to its arrival on every watcher. The watch
// streams live in worker threads (api-watch-worker.ts), so decoding 1,000 events does not delay
// the writer's next call; the send time travels inside the object (data.sentAt).
import type { ConfigMap } from "../gen/skiff/v1alpha1/config_pb.js";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport, type ApiCredentials } from "../internal/client/transport.ts";
import { configMap } from "../test/fixtures/objects.ts";
import type { WatchWorkerInput, WatchWorkerMessage } from "./api-watch-worker.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { sleep, summarize, type Summary } from "./lib/stats.ts";

export interface WatchBenchOptions {
  url: string;
  credentials: ApiCredentials;
  namespace: string;
  watchers: number;
  /** HTTP/2 connections the watch streams are spread over (in all). */
  connections: number;
  /** Worker threads the watch streams are spread over. */
  threads: number;
  writes: number;
  intervalMs: number;
  /** Extra data in every written object, so it is as big as in the other phases. */
  payload: Record<string, string>;
  /** How long to wait for every watch to be established. */
  establishTimeoutMs: number;
  /** How long after the last write to wait for stragglers. */
  drainTimeoutMs: number;
  /** Called once every watch is established, right before the first write. */
  beforeWrites?: () => Promise<void>;
  /** Called once every delivery arrived (or the drain timed out), before the watches close. */
  afterWrites?: () => Promise<void>;
}

export interface WatchBenchResult {
  watchers: number;
  connections: number;
  threads: number;
  writes: number;
  /** Time from opening the first watch to every watch having its first BOOKMARK. */
  establishMs: number;
  expected: number;
  delivered: number;
  missing: number;
  duplicates: number;
  /** Watch streams that ended with an error before the end of the phase. */
  failedWatches: number;
  firstError: string | undefined;
  /** Over every delivery. */
  delay: Summary;
  /** Per write: its earliest and its latest delivery. */
  firstDelivery: Summary;
  lastDelivery: Summary;
  /** Latency of the Create calls of this phase (with every watcher attached). */
  create: Summary;
}

interface Share {
  worker: Worker;
  input: WatchWorkerInput;
  established: Promise<void>;
  complete: Promise<void>;
  result: Promise<Extract<WatchWorkerMessage, { type: "result" }>>;
}

function startShare(input: WatchWorkerInput): Share {
  const worker = new Worker(new URL("./api-watch-worker.ts", import.meta.url), { workerData: input });
  onCleanup(() => worker.terminate());
  let established!: () => void;
  let complete!: () => void;
  let result!: (m: Extract<WatchWorkerMessage, { type: "result" }>) => void;
  let fail!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {}); // observed through the promises below
  const share: Share = {
    worker,
    input,
    established: Promise.race([new Promise<void>((r) => (established = r)), failed]),
    complete: new Promise<void>((r) => (complete = r)),
    result: Promise.race([new Promise<Extract<WatchWorkerMessage, { type: "result" }>>((r) => (result = r)), failed]),
  };
  worker.on("message", (m: WatchWorkerMessage) => {
    if (m.type === "established") established();
    else if (m.type === "complete") complete();
    else if (m.type === "failed") fail(new Error(`a watch failed before it was established: ${m.error}`));
    else result(m);
  });
  worker.on("error", (err) => fail(err));
  worker.on("exit", (code) => fail(new Error(`watch worker exited (${code}) before reporting`)));
  return share;
}

const wallNow = () => performance.timeOrigin + performance.now();

export async function watchDelivery(o: WatchBenchOptions): Promise<WatchBenchResult> {
  const threads = Math.max(1, Math.min(o.threads, o.watchers));
  const shares: Share[] = [];
  const t0 = performance.now();
  for (let t = 0; t < threads; t++) {
    const watchers = Math.floor(((t + 1) * o.watchers) / threads) - Math.floor((t * o.watchers) / threads);
    const connections = Math.max(1, Math.round(o.connections / threads));
    shares.push(startShare({ url: o.url, credentials: o.credentials, namespace: o.namespace, watchers, connections, writes: o.writes }));
  }
  const timeout = sleep(o.establishTimeoutMs).then(() => {
    throw new Error(`the watches were not all established after ${o.establishTimeoutMs} ms`);
  });
  await Promise.race([Promise.all(shares.map((s) => s.established)), timeout]);
  const establishMs = performance.now() - t0;

  await o.beforeWrites?.();
  const writer = createResourceClient<ConfigMap>(createApiTransport(o.url, o.credentials), "ConfigMap");
  const createLatencies: number[] = [];
  const start = performance.now();
  for (let seq = 0; seq < o.writes; seq++) {
    const wait = start + seq * o.intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    const t = performance.now();
    const obj = configMap(`watched-${seq}`, { ...o.payload, seq: String(seq), sentAt: String(wallNow()) }, o.namespace);
    await writer.create(obj);
    createLatencies.push(performance.now() - t);
  }
  await Promise.race([Promise.all(shares.map((s) => s.complete)), sleep(o.drainTimeoutMs)]);
  await o.afterWrites?.();
  for (const s of shares) s.worker.postMessage({ type: "stop" });
  const results = await Promise.all(shares.map((s) => s.result));

  const all: number[] = [];
  const first: number[] = [];
  const last: number[] = [];
  for (let seq = 0; seq < o.writes; seq++) {
    let lo = Infinity;
    let hi = -Infinity;
    results.forEach((res, t) => {
      for (let w = 0; w < shares[t].input.watchers; w++) {
        const d = res.delays[w * o.writes + seq];
        if (Number.isNaN(d)) continue;
        all.push(d);
        lo = Math.min(lo, d);
        hi = Math.max(hi, d);
      }
    });
    if (hi >= lo) {
      first.push(lo);
      last.push(hi);
    }
  }
  const delivered = results.reduce((n, r) => n + r.delivered, 0);
  return {
    watchers: o.watchers,
    connections: shares.reduce((n, s) => n + s.input.connections, 0),
    threads,
    writes: o.writes,
    establishMs,
    expected: o.watchers * o.writes,
    delivered,
    missing: o.watchers * o.writes - delivered,
    duplicates: results.reduce((n, r) => n + r.duplicates, 0),
    failedWatches: results.reduce((n, r) => n + r.failedWatches, 0),
    firstError: results.find((r) => r.firstError)?.firstError,
    delay: summarize(all),
    firstDelivery: summarize(first),
    lastDelivery: summarize(last),
    create: summarize(createLatencies),
  };
}
