// The report of `bench api`: a latency table with where the time went (server-side means, CPU
// per process), the watch delivery figures, and the verdicts on the targets.
import { cpus } from "node:os";
import type { WatchBenchResult } from "./api-watch.ts";
import { cpuPercent, histogramMeanMs, type Sample } from "./lib/probe.ts";
import { noisyNote } from "./lib/proc.ts";
import { summarize, type Summary } from "./lib/stats.ts";
import { fmtMs, renderTable, type Cell } from "./lib/table.ts";

export const CREATE_RATIO_TARGET = 3;
export const WATCH_P99_TARGET_MS = 100;

export interface PhaseReport {
  name: string;
  concurrency: number;
  latencies: number[];
  wallMs: number;
  sample?: Sample;
  /** Which apiserver histograms (handler:<x>, storage:<x>) belong to this phase. */
  server?: string;
}

export interface ApiReport {
  storedBytes: number;
  phases: PhaseReport[];
  ratio: { api: PhaseReport; raw: PhaseReport };
  watch?: { result: WatchBenchResult; intervalMs: number; sample: Sample | undefined };
}

const pct = (x: number) => (Number.isFinite(x) ? String(Math.round(x)) : "-");
const cpuCell = (s: Sample | undefined) => {
  if (!s) return "";
  const c = cpuPercent(s);
  return `${pct(c.client)} / ${pct(c.server)} / ${pct(c.etcd)} / ${pct(c.other)}`;
};

export function printReport(r: ApiReport): void {
  let noisiest = 0;
  const latency: Cell[][] = [];
  const where: Cell[][] = [];
  for (const p of r.phases) {
    const s = summarize(p.latencies);
    latency.push([p.name, s.count, p.concurrency, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.mean), fmtMs(s.max), Math.round((s.count / p.wallMs) * 1000)]);
    const m = p.sample;
    if (!m) continue;
    noisiest = Math.max(noisiest, cpuPercent(m).other);
    const mean = (key: string) => (p.server ? fmtMs(histogramMeanMs(m, `${key}:${p.server}`)) : "");
    const perOp = (sec: number) => fmtMs((sec / s.count) * 1000);
    where.push([
      p.name,
      mean("handler"),
      mean("storage"),
      `${perOp(m.client)} / ${perOp(m.server)} / ${perOp(m.etcd)}`,
      cpuCell(m),
      `${fmtMs(m.clientLoopMaxMs)} / ${fmtMs(m.serverLoopMaxMs)}`,
      fmtMs(m.serverGc * 1000),
    ]);
  }
  console.log(`\nlatency in ms, closed loop; one ConfigMap as stored in etcd: ${r.storedBytes} bytes`);
  console.log(renderTable(["phase", "ops", "conc", "p50", "p99", "mean", "max", "ops/s"], latency));
  console.log("\nwhere the time went");
  console.log(
    renderTable(
      ["phase", "handler ms", "storage ms", "cpu ms/op: client / server / etcd", "cpu %: client / server / etcd / other", "max loop stall ms: client / server", "server gc ms"],
      where,
    ),
  );
  console.log("  handler, storage: mean time in the apiserver's request handler and in its storage calls (its own histograms)");
  console.log(`  cpu %: of one core (${cpus().length} cores here) over the phase; other = every process that is not this benchmark's`);

  let watchOk: boolean | undefined;
  let watchP99 = NaN;
  if (r.watch) {
    const { result: w, intervalMs, sample } = r.watch;
    if (sample) noisiest = Math.max(noisiest, cpuPercent(sample).other);
    watchP99 = w.delay.p99;
    watchOk = w.missing === 0 && w.failedWatches === 0 && watchP99 <= WATCH_P99_TARGET_MS;
    console.log(
      `\nwatch delivery: ${w.watchers} watchers over ${w.connections} HTTP/2 connections in ${w.threads} worker thread${w.threads > 1 ? "s" : ""} ` +
        `(all established in ${fmtMs(w.establishMs)} ms), ` +
        `${w.writes} creates ${intervalMs} ms apart`,
    );
    console.log(`  deliveries ${w.delivered} of ${w.expected}: missing ${w.missing}, duplicates ${w.duplicates}, failed watches ${w.failedWatches}`);
    if (w.firstError) console.log(`  first watch error: ${w.firstError}`);
    if (sample) {
      const c = cpuPercent(sample);
      const perDelivery = (sec: number) => (Number.isFinite(sec) && w.delivered > 0 ? `${((sec / w.delivered) * 1e6).toFixed(0)} µs` : "-");
      console.log(
        `  cpu % while writing: client ${pct(c.client)}, server ${pct(c.server)}, etcd ${pct(c.etcd)}, other ${pct(c.other)}` +
          `  (per delivery: server ${perDelivery(sample.server)}, client ${perDelivery(sample.client)})`,
      );
    }
    const row = (name: string, s: Summary): Cell[] => [name, s.count, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.max)];
    console.log(
      renderTable(
        ["delay from write, ms", "n", "p50", "p99", "max"],
        [
          row("every delivery", w.delay),
          row("first watcher, per write", w.firstDelivery),
          row("last watcher, per write", w.lastDelivery),
          row("the create call itself", w.create),
        ],
        "  ",
      ),
    );
  }

  const api = summarize(r.ratio.api.latencies);
  const raw = summarize(r.ratio.raw.latencies);
  const ratio = api.p99 / raw.p99;
  console.log("\ntargets");
  console.log(
    `  ${r.ratio.api.name} p99 / ${r.ratio.raw.name} p99 = ${fmtMs(api.p99)} / ${fmtMs(raw.p99)} ms = ${ratio.toFixed(2)}×` +
      `   target ≤ ${CREATE_RATIO_TARGET}×: ${ratio <= CREATE_RATIO_TARGET ? "met" : "NOT met"}   (ratio of means: ${(api.mean / raw.mean).toFixed(2)}×)`,
  );
  if (watchOk === undefined) console.log("  watch delivery: skipped (--watchers 0)");
  else {
    const missing = r.watch && r.watch.result.missing > 0 ? ` (${r.watch.result.missing} deliveries missing)` : "";
    console.log(`  watch delivery p99 = ${fmtMs(watchP99)} ms   target ≤ ${WATCH_P99_TARGET_MS} ms: ${watchOk ? "met" : "NOT met"}${missing}`);
  }
  const note = noisyNote(noisiest);
  if (note) console.log(`\n${note}`);
}
