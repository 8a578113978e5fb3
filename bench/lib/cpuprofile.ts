// V8 CPU profiles for benchmarks: profile this process over a phase (node:inspector), and read a
// .cpuprofile (ours, or one a child wrote with --cpu-prof) into its top functions by self time,
// so that a report can say where a process spent its CPU without opening DevTools.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { basename, join } from "node:path";
import { fmtMs, renderTable } from "./table.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface TopFunction {
  name: string;
  /** file:line, relative to the repository when inside it. */
  where: string;
  selfMs: number;
  /** Share of all samples (idle excluded). */
  pct: number;
}

/** Starts profiling this process; stop() writes the profile to `path` and returns it. */
export async function profileThisProcess(): Promise<{ stop(path: string): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return {
    async stop(path) {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(path, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

const root = new URL("../../", import.meta.url).href;

/** Where a frame's code lives: repository-relative for our code, "<package> (npm)", or node's own. */
function placeOf(url: string): { own: boolean; file: string } {
  if (url.startsWith(root) && !url.includes("/node_modules/")) return { own: true, file: url.slice(root.length) };
  const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (m) return { own: false, file: `${m[1]} (npm)` };
  return { own: false, file: url };
}

export interface ProfileSummary {
  /** CPU time in the window (idle excluded), and the garbage collector's part of it. */
  busyMs: number;
  gcMs: number;
  idleMs: number;
  /** Functions by self time. */
  self: TopFunction[];
  /**
   * Each sample charged to the innermost frame of OUR code on its stack (internal/…, cmd/…,
   * bench/…), so a library or node call counts for the function of ours that made it: what to
   * change where. Samples with no frame of ours (GC, node's own I/O callbacks) are charged to
   * "(no frame of ours) <file of the leaf>".
   */
  own: TopFunction[];
}

/**
 * Reads a .cpuprofile. fromUs/toUs (CLOCK_MONOTONIC µs, e.g. process.hrtime.bigint() / 1000n in
 * any process of the machine: V8's profile clock is the same) keep only the samples in between.
 */
export function summarizeProfile(path: string, opts: { fromUs?: number; toUs?: number; top?: number } = {}): ProfileSummary {
  const p = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const n = opts.top ?? 15;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const selfById = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if ((opts.fromUs !== undefined && t < opts.fromUs) || (opts.toUs !== undefined && t > opts.toUs)) continue;
    selfById.set(p.samples[i], (selfById.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  const self = new Map<string, TopFunction>();
  const own = new Map<string, TopFunction>();
  const add = (m: Map<string, TopFunction>, name: string, where: string, ms: number) => {
    const key = `${name}@${where}`;
    const cur = m.get(key) ?? { name, where, selfMs: 0, pct: 0 };
    cur.selfMs += ms;
    m.set(key, cur);
  };
  const ownFrameCache = new Map<number, ProfileNode | null>();
  const ownFrame = (id: number): ProfileNode | null => {
    const hit = ownFrameCache.get(id);
    if (hit !== undefined) return hit;
    const node = byId.get(id)!;
    const res = placeOf(node.callFrame.url).own ? node : parent.has(id) ? ownFrame(parent.get(id)!) : null;
    ownFrameCache.set(id, res);
    return res;
  };
  let busy = 0;
  let idle = 0;
  let gc = 0;
  for (const [id, ms] of selfById) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") {
      idle += ms;
      continue;
    }
    busy += ms;
    if (f.functionName === "(garbage collector)") gc += ms;
    const place = placeOf(f.url);
    add(self, f.functionName || "(anonymous)", f.url ? `${place.file}:${f.lineNumber + 1}` : "", ms);
    const o = ownFrame(id);
    if (o) add(own, o.callFrame.functionName || "(anonymous)", `${placeOf(o.callFrame.url).file}:${o.callFrame.lineNumber + 1}`, ms);
    else add(own, "(no frame of ours)", f.url ? place.file : f.functionName, ms);
  }
  const top = (m: Map<string, TopFunction>) => {
    const list = [...m.values()].sort((a, b) => b.selfMs - a.selfMs).slice(0, n);
    for (const x of list) x.pct = busy > 0 ? (x.selfMs / busy) * 100 : 0;
    return list;
  };
  return { busyMs: busy, gcMs: gc, idleMs: idle, self: top(self), own: top(own) };
}

/** Both views of a summary as two tables: functions by self time, and what our code is charged. */
export function profileTables(s: ProfileSummary, n: number, indent: string): string {
  const rows = (list: TopFunction[]) => list.slice(0, n).map((t) => [t.name, t.where, fmtMs(t.selfMs), t.pct.toFixed(1)]);
  return [
    `${indent}busy ${fmtMs(s.busyMs)} ms (of it garbage collection ${fmtMs(s.gcMs)} ms), idle ${fmtMs(s.idleMs)} ms: ` +
      `the thread was not idle ${Math.round((s.busyMs / (s.busyMs + s.idleMs)) * 100)}% of the time (samples are wall-clock: waiting for a core counts as busy)`,
    renderTable(["by self time", "where", "ms", "%"], rows(s.self), indent),
    "",
    renderTable(["charged to the innermost function of ours on the stack", "where", "ms", "%"], rows(s.own), indent),
  ].join("\n");
}

/** The newest .cpuprofile written into `dir` by process `pid` (node names them CPU.<date>.<pid>.…). */
export function profileOf(dir: string, pid: number): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const mine = names.filter((f) => f.endsWith(".cpuprofile") && basename(f).split(".")[3] === String(pid)).map((f) => join(dir, f));
  return mine.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}
