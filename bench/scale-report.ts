// The report of `bench scale`: pods/s end to end and per stage (created → bound → Running, as
// the benchmark's watch saw them), per-pod latencies, a timeline, the scheduler's binds/s, the
// apiserver's calls, etcd's writes next to raw puts, CPU per process, the hollow nodes' own view,
// and (with --cpu-prof) each process's top functions. Then the verdict.
import { cpus } from "node:os";
import { profileOf, profileTables, summarizeProfile } from "./lib/cpuprofile.ts";
import type { PodSighting } from "./lib/pod-watch.ts";
import { noisyNote, type CpuSample } from "./lib/proc.ts";
import { counterDelta, type Scrape } from "./lib/prom.ts";
import { summarize } from "./lib/stats.ts";
import { fmtMs, renderTable, type Cell } from "./lib/table.ts";
import type { HollowStats } from "./scale-hollow.ts";

export const TARGET_PODS_PER_S = 300;

export interface RawPuts {
  concurrency: number;
  latencies: Float64Array;
  wallMs: number;
  bytes: number;
  why: string;
}

export interface ScaleReport {
  nodes: number;
  deployments: number;
  replicas: number;
  heartbeatMs: number;
  resyncMs: number;
  t0: number;
  tEnd: number;
  endReason: string;
  depCreateMs: Float64Array;
  sightings: PodSighting[];
  timeline: { t: number; added: number; bound: number; running: number }[];
  /** [apiserver, etcd] before and after the run. */
  metricsBefore: Scrape[];
  metricsAfter: Scrape[];
  cpu: CpuSample;
  /** The same processes before the run, every node Ready and no pods (--idle). */
  idleCpu?: CpuSample;
  groupOrder: string[];
  hollow: HollowStats;
  raw: RawPuts[];
  /** --cpu-prof: where the children wrote their profiles, and the run's window on the profiles' clock. */
  profiles?: { dir: string; pids: Record<string, number>; fromUs: number; toUs: number };
}

/** Most events in any window of `windowMs` (times ascending). */
function peak(times: number[], windowMs: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] > windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

const s1 = (ms: number) => (ms / 1000).toFixed(1);
const rate = (n: number, ms: number) => (ms > 0 ? Math.round((n / ms) * 1000) : NaN);

/** Per "service.method" of the apiserver: requests (and non-ok ones) and mean latency over the run. */
function apiCalls(before: Scrape, after: Scrape): { key: string; count: number; errors: number; meanMs: number }[] {
  const parse = (series: string) => {
    const body = series.slice(series.indexOf("{") + 1, -1);
    return new Map([...body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
  };
  const out = new Map<string, { key: string; count: number; errors: number; sum: number; n: number }>();
  const entry = (key: string) => out.get(key) ?? out.set(key, { key, count: 0, errors: 0, sum: 0, n: 0 }).get(key)!;
  for (const [series, value] of after) {
    const name = series.slice(0, series.indexOf("{"));
    const delta = value - (before.get(series) ?? 0);
    if (delta === 0) continue;
    if (name === "skiff_apiserver_requests_total") {
      const l = parse(series);
      const e = entry(`${(l.get("service") ?? "").replace(/^skiff\.v1alpha1\./, "")}.${l.get("method")}`);
      e.count += delta;
      if (l.get("code") !== "ok") e.errors += delta;
    } else if (name === "skiff_apiserver_request_duration_seconds_sum" || name === "skiff_apiserver_request_duration_seconds_count") {
      const l = parse(series);
      const e = entry(`${(l.get("service") ?? "").replace(/^skiff\.v1alpha1\./, "")}.${l.get("method")}`);
      if (name.endsWith("_sum")) e.sum += delta;
      else e.n += delta;
    }
  }
  return [...out.values()].filter((e) => e.count > 0).map((e) => ({ key: e.key, count: e.count, errors: e.errors, meanMs: e.n > 0 ? (e.sum / e.n) * 1000 : NaN }));
}

export function printScaleReport(r: ScaleReport): void {
  const total = r.deployments * r.replicas;
  const wallMs = r.tEnd - r.t0;
  const rel = (t: number) => t - r.t0;
  const added = r.sightings.map((s) => rel(s.added)).sort((a, b) => a - b);
  const bound = r.sightings.filter((s) => s.bound !== undefined).map((s) => rel(s.bound!)).sort((a, b) => a - b);
  const running = r.sightings.filter((s) => s.running !== undefined).map((s) => rel(s.running!)).sort((a, b) => a - b);
  const lastRunning = running.at(-1) ?? wallMs;
  const complete = running.length >= total;
  const e2e = complete ? rate(total, lastRunning) : rate(running.length, wallMs);

  console.log(`\n${r.nodes} hollow nodes, ${r.deployments} Deployments × ${r.replicas} replicas = ${total} pods; ${r.endReason}`);
  console.log(
    `end to end: ${running.length} pods Running ${s1(lastRunning)} s after the first Deployment create call: ${e2e} pods/s` +
      (complete ? "" : ` (INCOMPLETE: ${total - running.length} pods never seen Running)`),
  );

  const stage = (name: string, times: number[]): Cell[] => [
    name,
    times.length,
    times.length ? s1(times[0]) : "-",
    times.length ? s1(times.at(-1)!) : "-",
    times.length ? rate(times.length, times.at(-1)!) : "-",
    times.length > 1 ? rate(times.length - 1, times.at(-1)! - times[0]) : "-",
    peak(times, 1000),
  ];
  console.log("\nstages, as this benchmark's watch saw them (s after the first create call)");
  console.log(
    renderTable(
      ["stage", "pods", "first s", "last s", "pods/s from t0", "pods/s first→last", "peak in 1 s"],
      [stage("created (ReplicaSet controller)", added), stage("bound (scheduler)", bound), stage("Running (hollow agents)", running)],
      "  ",
    ),
  );
  const dep = summarize(r.depCreateMs);
  console.log(`  the ${r.deployments} Deployment create calls (10 at a time): p50 ${fmtMs(dep.p50)} ms, max ${fmtMs(dep.max)} ms`);

  const lat = (name: string, f: (s: PodSighting) => number | undefined): Cell[] => {
    const xs = r.sightings.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    const s = summarize(xs);
    return [name, s.count, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.max)];
  };
  console.log("\nper pod, ms");
  console.log(
    renderTable(
      ["from → to", "pods", "p50", "p99", "max"],
      [
        lat("created → bound (scheduler queue + decision + Bind)", (s) => (s.bound !== undefined ? s.bound - s.added : undefined)),
        lat("bound → Running (agent watch + sync + its status write)", (s) => (s.bound !== undefined && s.running !== undefined ? s.running - s.bound : undefined)),
        lat("created → Running", (s) => (s.running !== undefined ? s.running - s.added : undefined)),
        lat("first create call → pod created", (s) => s.added - r.t0),
      ],
      "  ",
    ),
  );

  // timeline, at most ~16 rows
  const last = r.timeline.at(-1);
  if (last) {
    const step = Math.max(1000, Math.ceil(last.t / 16 / 1000) * 1000);
    const rows: Cell[][] = [];
    let prev = { t: 0, added: 0, bound: 0, running: 0 };
    for (let at = step; at < last.t + step; at += step) {
      const cur = [...r.timeline].reverse().find((x) => x.t <= at) ?? prev;
      const dt = (cur.t - prev.t) / 1000;
      rows.push([s1(cur.t), cur.added, cur.bound, cur.running, dt > 0 ? Math.round((cur.added - prev.added) / dt) : "-", dt > 0 ? Math.round((cur.bound - prev.bound) / dt) : "-", dt > 0 ? Math.round((cur.running - prev.running) / dt) : "-"]);
      prev = cur;
      if (cur === last) break;
    }
    console.log("\ntimeline");
    console.log(renderTable(["s", "created", "bound", "Running", "created/s", "bound/s", "Running/s"], rows, "  "));
  }

  // ---- scheduler, apiserver, etcd ----
  const [apiBefore, etcdBefore] = r.metricsBefore;
  const [apiAfter, etcdAfter] = r.metricsAfter;
  const calls = apiCalls(apiBefore, apiAfter).sort((a, b) => b.count - a.count);
  const bind = calls.find((c) => c.key === "PodService.Bind");
  const bindSpan = bound.length > 1 ? bound.at(-1)! - bound[0] : NaN;
  console.log(
    `\nscheduler: ${bound.length} pods bound; ${rate(bound.length - 1, bindSpan)} binds/s from its first to its last bind seen on the watch` +
      (bind ? `; Bind requests at the apiserver: ${bind.count} (${bind.errors} refused), ${fmtMs(bind.meanMs)} ms mean in the apiserver` : ""),
  );
  console.log(`\napiserver requests during the run (${s1(wallMs)} s; watches count once, when opened)`);
  console.log(
    renderTable(
      ["service.method", "requests", "per s", "non-ok", "mean ms", "per pod"],
      calls.slice(0, 14).map((c) => [c.key, c.count, rate(c.count, wallMs), c.errors, fmtMs(c.meanMs), (c.count / Math.max(1, running.length)).toFixed(2)]),
      "  ",
    ),
  );

  const etcdDelta = (name: string) => counterDelta(etcdBefore, etcdAfter, name);
  const proposals = etcdDelta("etcd_server_proposals_committed_total");
  const mvccPuts = etcdDelta("etcd_mvcc_put_total");
  const fsyncs = etcdDelta("etcd_disk_wal_fsync_duration_seconds_count");
  const fsyncMean = fsyncs > 0 ? (etcdDelta("etcd_disk_wal_fsync_duration_seconds_sum") / fsyncs) * 1000 : NaN;
  const commits = etcdDelta("etcd_disk_backend_commit_duration_seconds_count");
  const commitMean = commits > 0 ? (etcdDelta("etcd_disk_backend_commit_duration_seconds_sum") / commits) * 1000 : NaN;
  console.log(
    `\netcd during the run: ${proposals} writes committed (raft proposals) = ${rate(proposals, wallMs)}/s, ` +
      `${(proposals / Math.max(1, running.length)).toFixed(1)} per Running pod; ${mvccPuts} key puts; ` +
      `${fsyncs} WAL fsyncs (${fmtMs(fsyncMean)} ms mean), ${commits} backend commits (${fmtMs(commitMean)} ms mean)`,
  );
  if (r.raw.length > 0) {
    console.log("raw etcd put (etcd3 client from this process, same value: a stored Running pod), after the run, the cluster idling");
    console.log(
      renderTable(
        ["concurrency", "puts", "bytes", "puts/s", "p50 ms", "p99 ms", ""],
        r.raw.map((x) => {
          const s = summarize(x.latencies);
          return [x.concurrency, s.count, x.bytes, rate(s.count, x.wallMs), fmtMs(s.p50), fmtMs(s.p99), x.why];
        }),
        "  ",
      ),
    );
    const same = r.raw[0];
    const putsPerS = rate(same.latencies.length, same.wallMs);
    const perPod = proposals / Math.max(1, running.length);
    console.log(
      `  "as during the run": mean writes in flight at the apiserver's storage layer over the run (Little's law: Σ write time / wall time).` +
        ` At ${perPod.toFixed(1)} writes per pod, ${putsPerS} puts/s is a ceiling of ${Math.round(putsPerS / perPod)} pods/s.`,
    );
  }

  // ---- CPU ----
  const order = [...r.groupOrder, "other"];
  console.log(`\nCPU over the run, % of one core (${cpus().length} cores here; ${(cpus().length * 100).toFixed(0)}% is the whole machine), and CPU ms per Running pod`);
  console.log(
    renderTable(
      order,
      [order.map((g) => `${Math.round(r.cpu.pct[g] ?? 0)}% · ${fmtMs(((r.cpu.seconds[g] ?? 0) / Math.max(1, running.length)) * 1000)}`)],
      "  ",
    ),
  );
  console.log("  other = every process on the machine that is not this benchmark's");
  // What a component spends per second with no pods (heartbeats, Lease renewals, elections) is
  // charged to pods in proportion to the run's length: a slow run on a busy machine looks dearer
  // per pod. Net of that idle rate, the figure is the work each pod causes.
  const idle = r.idleCpu;
  const idleSeconds = (g: string) => (idle ? ((idle.pct[g] ?? 0) / 100) * r.cpu.wallS : 0);
  if (idle) {
    console.log(`
idle before the run (${s1(idle.wallS * 1000)} s, every node Ready, no pods), % of one core; and CPU ms per Running pod with that rate subtracted`);
    const procs = r.groupOrder.filter((g) => g !== "bench");
    console.log(
      renderTable(
        procs,
        [procs.map((g) => `${Math.round(idle.pct[g] ?? 0)}% · ${fmtMs(Math.max(0, (r.cpu.seconds[g] ?? 0) - idleSeconds(g)) / Math.max(1, running.length) * 1000)}`)],
        "  ",
      ),
    );
  }

  // CPU per pod is what noise disturbs least; each Node process runs its JavaScript on one core,
  // so 1000 / (its ms per pod) is the most pods/s it can ever carry, however quiet the machine.
  // Net of the idle rate when it was measured: a process then carries (1 − its idle share of a core) × 1000 / (ms per pod).
  const perPod = (g: string) => (Math.max(0, (r.cpu.seconds[g] ?? 0) - idleSeconds(g)) / Math.max(1, running.length)) * 1000;
  const idleShare = (g: string) => (idle?.pct[g] ?? 0) / 100;
  const ceiling = (g: string) => ((1 - idleShare(g)) * 1000) / perPod(g);
  const plane = ["apiserver", "etcd", "scheduler", "controller-manager"].filter((g) => g in r.cpu.seconds);
  const planeMs = plane.reduce((x, g) => x + perPod(g), 0);
  const planeIdle = plane.reduce((x, g) => x + idleShare(g), 0);
  console.log(
    `\nthe ceiling CPU cost sets: a Node process runs its JavaScript on one core, so it carries at most 1000 / (its CPU ms per pod) pods/s` +
      (idle ? " (ms per pod net of the idle rate; the ceiling leaves the idle share of the core to it)" : ""),
  );
  console.log(
    renderTable(
      ["process", "CPU ms per pod", "pods/s with a whole core", `for ${TARGET_PODS_PER_S}/s`],
      [
        ...plane.map((g): Cell[] => [g, fmtMs(perPod(g)), Math.round(ceiling(g)), ceiling(g) >= TARGET_PODS_PER_S ? "yes" : `${(TARGET_PODS_PER_S / ceiling(g)).toFixed(1)}× too much`]),
        [
          "control plane, all four",
          fmtMs(planeMs),
          `${Math.round(((cpus().length - planeIdle) * 1000) / planeMs)} on this machine's ${cpus().length} cores`,
          `${(planeIdle + (TARGET_PODS_PER_S * planeMs) / 1000).toFixed(1)} cores needed`,
        ],
      ],
      "  ",
    ),
  );
  console.log(
    `  not counted: the hollow nodes (${fmtMs(perPod("hollow nodes"))} ms per pod; real nodes bring their own CPU) and this benchmark (${fmtMs(perPod("bench"))} ms per pod)`,
  );

  const h = r.hollow;
  const hc = Object.entries(h.calls).sort((a, b) => b[1].count - a[1].count);
  console.log(
    `\nhollow nodes (one process, ${r.nodes} agents, heartbeat ${r.heartbeatMs} ms, resync ${r.resyncMs} ms): RSS ${h.rssMiB.toFixed(0)} MiB, ` +
      `event-loop delay mean ${fmtMs(h.loop.meanMs)} / p99 ${fmtMs(h.loop.p99Ms)} / max ${fmtMs(h.loop.maxMs)} ms, CPU ${Math.round((h.cpuS / h.wallS) * 100)}% of a core`,
  );
  console.log(
    renderTable(
      ["their API calls", "count", "non-ok", "mean ms", "max ms"],
      hc.slice(0, 8).map(([k, c]) => [k, c.count, c.errors, fmtMs(c.totalMs / c.count), fmtMs(c.maxMs)]),
      "  ",
    ),
  );

  if (r.profiles) {
    console.log(`\nCPU profiles (${r.profiles.dir}), samples of the run only (from the first create call to the end)`);
    for (const [name, pid] of Object.entries(r.profiles.pids)) {
      const path = profileOf(r.profiles.dir, pid);
      if (!path) {
        console.log(`\n  ${name}: no profile written`);
        continue;
      }
      console.log(`\n  ${name} (${path.split("/").at(-1)})`);
      console.log(profileTables(summarizeProfile(path, { fromUs: r.profiles.fromUs, toUs: r.profiles.toUs, top: 10 }), 10, "    "));
    }
  }

  console.log("\ntarget");
  console.log(`  ${e2e} pods/s end to end, target ≥ ${TARGET_PODS_PER_S} pods/s: ${complete && e2e >= TARGET_PODS_PER_S ? "met" : "NOT met"}${complete ? "" : " (not every pod became Running)"}`);
  const note = noisyNote(r.cpu.pct.other ?? 0);
  if (note) console.log(`\n${note}`);
}
