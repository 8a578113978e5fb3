// What each process did during a benchmark phase: CPU seconds of the load generator (this
// process), the apiserver and etcd (both from their Prometheus process_cpu_seconds_total), of the
// whole machine (os.cpus(), so that "other" = load from processes that are not ours), and the
// apiserver's own request/storage histograms over the same interval. Phases may be run in
// several blocks: samples add up.
import { cpus } from "node:os";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { counterDelta, histogramDelta, scrape, type Scrape } from "./prom.ts";

export interface ProbeSources {
  /** apiserver /metrics (prom-client default metrics under the skiff_apiserver_process_ prefix). */
  serverMetrics: string;
  /** etcd /metrics. */
  etcdMetrics: string;
  /** The apiserver runs in this process: its CPU is counted as the client's. */
  sameProcess: boolean;
  /** Histograms of the apiserver to follow: name → [metric, label matchers]. */
  histograms: Record<string, [string, Record<string, RegExp>]>;
}

export interface Mark {
  at: number;
  clientLoop: ReturnType<typeof monitorEventLoopDelay>;
  client: NodeJS.CpuUsage;
  machineBusyMs: number;
  server: Scrape;
  etcd: Scrape;
}

export interface Sample {
  wallS: number;
  /** CPU seconds per process; server is NaN when it runs in this process. */
  client: number;
  server: number;
  etcd: number;
  /** Every process on the machine. */
  machine: number;
  /** Longest event-loop stall (ms) of the apiserver and of this process's main thread. */
  serverLoopMaxMs: number;
  clientLoopMaxMs: number;
  /** Time the apiserver spent in garbage collection (s). */
  serverGc: number;
  /** Per followed histogram: Δsum (seconds) and Δcount. */
  histograms: Record<string, { sum: number; count: number }>;
}

function machineBusyMs(): number {
  let busy = 0;
  for (const c of cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  return busy;
}

async function scrapeBoth(src: ProbeSources): Promise<{ server: Scrape; etcd: Scrape }> {
  const [server, etcd] = await Promise.all([scrape(src.serverMetrics), scrape(src.etcdMetrics)]);
  return { server, etcd };
}

const SERVER = "skiff_apiserver_process_";

/**
 * Call right before a phase: the scrapes happen before its clock starts. (The apiserver's
 * event-loop delay histogram restarts at every scrape, so the next scrape's max is this phase's.)
 */
export async function probeStart(src: ProbeSources): Promise<Mark> {
  const scraped = await scrapeBoth(src);
  const clientLoop = monitorEventLoopDelay({ resolution: 10 });
  clientLoop.enable();
  return { ...scraped, clientLoop, at: performance.now(), client: process.cpuUsage(), machineBusyMs: machineBusyMs() };
}

/** Call right after the phase: its clock stops before the scrapes. */
export async function probeEnd(src: ProbeSources, a: Mark): Promise<Sample> {
  const wallS = (performance.now() - a.at) / 1000;
  const c = process.cpuUsage(a.client);
  const machine = (machineBusyMs() - a.machineBusyMs) / 1000;
  a.clientLoop.disable();
  const b = await scrapeBoth(src);
  const histograms: Sample["histograms"] = {};
  for (const [key, [name, labels]] of Object.entries(src.histograms)) histograms[key] = histogramDelta(a.server, b.server, name, labels);
  return {
    wallS,
    client: (c.user + c.system) / 1e6,
    server: src.sameProcess ? NaN : counterDelta(a.server, b.server, `${SERVER}process_cpu_seconds_total`),
    etcd: counterDelta(a.etcd, b.etcd, "process_cpu_seconds_total"),
    machine,
    serverLoopMaxMs: (b.server.get(`${SERVER}nodejs_eventloop_lag_max_seconds`) ?? NaN) * 1000,
    clientLoopMaxMs: a.clientLoop.max / 1e6,
    serverGc: counterDelta(a.server, b.server, `${SERVER}nodejs_gc_duration_seconds_sum`),
    histograms,
  };
}

export function addSamples(a: Sample | undefined, b: Sample): Sample {
  if (!a) return b;
  const histograms: Sample["histograms"] = {};
  for (const k of new Set([...Object.keys(a.histograms), ...Object.keys(b.histograms)])) {
    const x = a.histograms[k] ?? { sum: 0, count: 0 };
    const y = b.histograms[k] ?? { sum: 0, count: 0 };
    histograms[k] = { sum: x.sum + y.sum, count: x.count + y.count };
  }
  return {
    wallS: a.wallS + b.wallS,
    client: a.client + b.client,
    server: a.server + b.server,
    etcd: a.etcd + b.etcd,
    machine: a.machine + b.machine,
    serverLoopMaxMs: Math.max(a.serverLoopMaxMs, b.serverLoopMaxMs),
    clientLoopMaxMs: Math.max(a.clientLoopMaxMs, b.clientLoopMaxMs),
    serverGc: a.serverGc + b.serverGc,
    histograms,
  };
}

/** Percent of one core used, per process, and by everything else on the machine. */
export function cpuPercent(s: Sample): { client: number; server: number; etcd: number; other: number } {
  const pct = (sec: number) => (sec / s.wallS) * 100;
  const ours = s.client + (Number.isNaN(s.server) ? 0 : s.server) + s.etcd;
  return { client: pct(s.client), server: pct(s.server), etcd: pct(s.etcd), other: Math.max(0, pct(s.machine - ours)) };
}

/** Mean of a followed histogram in ms (NaN without samples). */
export function histogramMeanMs(s: Sample, key: string): number {
  const h = s.histograms[key];
  return h && h.count > 0 ? (h.sum / h.count) * 1000 : NaN;
}
