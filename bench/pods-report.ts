// The report of `bench pods`: pod create → Running next to `ctr run -d`, the verdict, and where a
// pod's time went: its path cut at the calls the agent made for it (spans from pods-trace.ts),
// the containerd RPCs inside, the agent's API calls, and CPU per process group.
import { cpus } from "node:os";
import { profileTables, summarizeProfile } from "./lib/cpuprofile.ts";
import { noisyNote, type CpuSample } from "./lib/proc.ts";
import { summarize, type Summary } from "./lib/stats.ts";
import { fmtMs, renderTable, type Cell } from "./lib/table.ts";
import type { Span, Tracer } from "./pods-trace.ts";

export interface PodRun {
  name: string;
  uid: string;
  /** Before the Create call, after it, first seen on the bench's watch, seen Running there. */
  t0: number;
  t1: number;
  added: number;
  running: number;
}

export interface PodsReport {
  command: string;
  concurrency: number;
  rounds: number;
  pods: PodRun[];
  ctrMs: number[];
  podWallMs: number;
  ctrWallMs: number;
  podCpu: CpuSample;
  ctrCpu: CpuSample;
  groupOrder: string[];
  tracer: Tracer;
  deleted: { count: number; ms: number };
  ctrRemoved: number;
  maxOtherPct: number;
  /** A CPU profile of this process (the agent) over the timed phase. */
  agentProfile?: string;
}

export const RATIO = 1.5;
export const SLACK_MS = 100;

/** A pod's path as consecutive points; a segment is the time between two neighbours. */
const POINTS = [
  ["syncStart", "Create call → the agent's informer → queue → sync starts", "to sync start"],
  ["netEnd", "network setUp: netns + CNI ADD (bridge, host-local, portmap)", "network setUp"],
  ["createStart", "list containers, pod dir, /etc files, env, image check", "files+image"],
  ["createEnd", "createContainer: lease, snapshot, container, task (runc create)", "createContainer"],
  ["startEnd", "startContainer: Wait + Start + started-at label", "startContainer"],
  ["status2Start", "list containers, probes, compute status", "list #2"],
  ["status2End", "UpdateStatus (Running; a pod running within 500 ms gets no earlier Pending write)", "UpdateStatus"],
  ["running", "Running reaches the bench's watch", "to the watch"],
] as const;

type Point = (typeof POINTS)[number][0] | "t0";

function pathOf(p: PodRun, spans: Span[]): Record<Point, number> | undefined {
  const mine = spans.filter((s) => s.uid === p.uid && s.start >= p.t0 && s.start <= p.running);
  const first = (what: string, pred: (s: Span) => boolean = () => true) => mine.find((s) => s.what === what && pred(s));
  const setUp = first("network.setUp");
  const status = mine.filter((s) => s.what === "api.PodService.UpdateStatus");
  const s2 = status.find((s) => s.detail === "Running");
  const createC = first("runtime.createContainer");
  const startC = first("runtime.startContainer");
  if (!setUp || !s2 || !createC || !startC) return undefined;
  return {
    t0: p.t0,
    syncStart: setUp.start,
    netEnd: setUp.end,
    createStart: createC.start,
    createEnd: createC.end,
    startEnd: startC.end,
    status2Start: s2.start,
    status2End: s2.end,
    running: p.running,
  };
}

const row = (name: string, s: Summary, extra: Cell[] = []): Cell[] => [name, s.count, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.mean), fmtMs(s.max), ...extra];

export function printPodsReport(r: PodsReport): void {
  const podLat = summarize(r.pods.map((p) => p.running - p.t0));
  const ctr = summarize(r.ctrMs);
  const how = r.concurrency === 1 ? "one at a time" : `${r.concurrency} at a time`;
  console.log(`\nstartup latency in ms, ${how}, pods and ctr runs interleaved in ${r.rounds} rounds`);
  console.log(
    renderTable(
      ["what", "n", "p50", "p99", "mean", "max", "per s"],
      [
        row(`pod: Create call → phase Running on a watch (${r.command})`, podLat, [(r.pods.length / (r.podWallMs / 1000)).toFixed(1)]),
        row("ctr run -d (sleep 3600): spawn → exit", ctr, [(r.ctrMs.length / (r.ctrWallMs / 1000)).toFixed(1)]),
      ],
    ),
  );

  // ---- where a pod's time went ----
  const spans = r.tracer.spans;
  const paths = r.pods.map((p) => pathOf(p, spans)).filter((x): x is Record<Point, number> => x !== undefined);
  const early = r.pods.filter((p) => spans.some((s) => s.uid === p.uid && s.what === "api.PodService.UpdateStatus" && s.detail !== "Running" && s.start >= p.t0 && s.start <= p.running)).length;
  console.log(`\nwhere a pod's time went (ms; ${paths.length} of ${r.pods.length} pods had every step traced; ${early} also had a Pending status write first)`);
  const seg: Cell[][] = [];
  let prev: Point = "t0";
  const totalMean = summarize(paths.map((x) => x.running - x.t0)).mean;
  for (const [point, label] of POINTS) {
    const from = prev;
    const s = summarize(paths.map((x) => x[point] - x[from]));
    seg.push(row(label, s, [`${Math.round((s.mean / totalMean) * 100)}%`]));
    prev = point;
  }
  seg.push(row("total", summarize(paths.map((x) => x.running - x.t0)), ["100%"]));
  console.log(renderTable(["step (each from the end of the one before)", "n", "p50", "p99", "mean", "max", "of mean"], seg, "  "));
  const createCall = summarize(r.pods.map((p) => p.t1 - p.t0));
  const added = summarize(r.pods.map((p) => p.added - p.t0));
  console.log(
    `  inside the first step: the Create call itself took ${fmtMs(createCall.p50)} ms (p50; p99 ${fmtMs(createCall.p99)}); ` +
      `the pod's ADDED event reached the bench's own watch ${fmtMs(added.p50)} ms (p50) after the call began`,
  );

  // The slowest pods: their biggest steps, and how many container listings ran meanwhile (two are
  // their own sync's; more means other pods' syncs, i.e. the periodic resync, ran at the same time).
  const slow = r.pods
    .map((p) => ({ p, path: pathOf(p, spans) }))
    .sort((a, b) => b.p.running - b.p.t0 - (a.p.running - a.p.t0))
    .slice(0, 3)
    .map(({ p, path }): Cell[] => {
      const lists = spans.filter((s) => s.what === "runtime.listContainers" && s.start >= p.t0 && s.start <= p.running).length;
      let steps = "";
      if (path) {
        let from: Point = "t0";
        const parts: [string, number][] = [];
        for (const [point, , short] of POINTS) {
          parts.push([short, path[point] - path[from]]);
          from = point;
        }
        steps = parts.sort((a, b) => b[1] - a[1]).slice(0, 3).map(([l, ms]) => `${l} ${fmtMs(ms)}`).join(" · ");
      }
      return [p.name, fmtMs(p.running - p.t0), lists, steps];
    });
  console.log("\n  the slowest pods (a pod's own sync lists containers twice; more listings mean other pods' syncs ran meanwhile)");
  console.log(renderTable(["pod", "ms", "container listings meanwhile", "biggest steps (ms)"], slow, "  "));

  // containerd RPCs and agent API calls made while the timed pods started, per pod
  const windows = r.pods.map((p) => [p.t0, p.running] as const);
  const inWindows = spans.filter((s) => windows.some(([a, b]) => s.start >= a && s.start <= b));
  const byWhat = new Map<string, Span[]>();
  for (const s of inWindows) {
    if (!/^(containerd|api|runtime|network|exec)\./.test(s.what) || s.what === "exec.ctr run" || Number.isNaN(s.end)) continue;
    const list = byWhat.get(s.what) ?? [];
    list.push(s);
    byWhat.set(s.what, list);
  }
  const calls: Cell[][] = [...byWhat]
    .map(([what, list]) => {
      const d = summarize(list.map((s) => s.end - s.start));
      return { what, n: list.length, d, sum: d.mean * list.length };
    })
    .sort((a, b) => {
      const order = ["network", "exec", "runtime", "containerd", "api"];
      const ka = order.indexOf(a.what.split(".")[0]);
      const kb = order.indexOf(b.what.split(".")[0]);
      return ka === kb ? b.sum - a.sum : ka - kb;
    })
    .map(({ what, n, d, sum }) => [what, (n / r.pods.length).toFixed(1), fmtMs(sum / r.pods.length), fmtMs(d.p50), fmtMs(d.p99), what.endsWith("Tasks.Wait") ? "(in parallel with Start)" : ""]);
  if (r.concurrency > 1) console.log("\n  (pods overlapped: calls are counted in every window they fall into)");
  console.log("\ncalls made while a timed pod was starting (agent → network → programs, agent → runtime → containerd, agent → apiserver)");
  console.log("  every call in the window counts, also those of other pods' syncs (the periodic resync) and of heartbeats");
  console.log(renderTable(["call", "per pod", "ms per pod", "p50 ms", "p99 ms", ""], calls, "  "));

  // ---- CPU ----
  const perOp = (sec: number, n: number) => fmtMs((sec / n) * 1000);
  const cpuRow = (name: string, s: CpuSample, n: number): Cell[] => [
    name,
    ...[...r.groupOrder, "other"].map((g) => {
      const programs = s.reaped[g] ?? 0;
      const split = programs > 0 ? ` (${perOp((s.seconds[g] ?? 0) - programs, n)} + programs ${perOp(programs, n)})` : "";
      return `${Math.round(s.pct[g] ?? 0)}% · ${perOp(s.seconds[g] ?? 0, n)}${split}`;
    }),
  ];
  console.log(`\nCPU, % of one core (${cpus().length} cores here) · CPU ms per pod or ctr run`);
  console.log(
    renderTable(["phase", ...r.groupOrder, "other"], [cpuRow("pods", r.podCpu, r.pods.length), cpuRow("ctr run", r.ctrCpu, r.ctrMs.length)], "  "),
  );
  console.log("  programs: CPU of the exited programs a group ran (bench+agent: ip, CNI plugins, ctr; containerd: shim start-up); containerd includes its shims, runc and the containers");
  console.log("  other = every process on the machine that is not this benchmark's");
  if (r.agentProfile) {
    console.log(`\nCPU profile of this process (the agent; also the benchmark's own work) over the timed phase: ${r.agentProfile}`);
    console.log(profileTables(summarizeProfile(r.agentProfile, { top: 15 }), 15, "  "));
  }
  console.log(`\ncleanup: ${r.deleted.count} pods deleted through the API (grace 1 s) and gone (torn down by the agent) in ${fmtMs(r.deleted.ms)} ms; ${r.ctrRemoved} ctr containers removed`);

  const limit = RATIO * ctr.p99 + SLACK_MS;
  console.log("\ntarget");
  console.log(
    `  pod p99 ≤ ${RATIO} × ctr p99 + ${SLACK_MS} ms: ${fmtMs(podLat.p99)} ≤ ${RATIO} × ${fmtMs(ctr.p99)} + ${SLACK_MS} = ${fmtMs(limit)} ms: ${podLat.p99 <= limit ? "met" : "NOT met"}` +
      `   (p50: ${fmtMs(podLat.p50)} vs ${fmtMs(ctr.p50)} ms)`,
  );
  const note = noisyNote(r.maxOtherPct);
  if (note) console.log(`\n${note}`);
}
