// CPU per group of processes, from /proc: a benchmark names its groups ("apiserver", "containerd
// + shims", …) by a predicate on a process (pid, command line); every process belongs to the
// group of its nearest ancestor-or-self that matches one, and a group's CPU is the utime + stime
// of its processes plus that of their exited children they reaped (cutime + cstime: the runc,
// CNI plugin and `ip` runs). "other" is the whole machine (os.cpus) minus every group: the load of
// processes that are not this benchmark's. Linux only.
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on every Linux we run on). */
const HZ = 100;

export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
  /** utime + stime + cutime + cstime, in seconds. */
  cpu: number;
  /** cutime + cstime alone: the exited children it reaped. */
  reaped: number;
}

/** Command lines by pid: read once (a pid is not reused within a benchmark run in practice). */
const cmdlines = new Map<number, string>();

export function readProcs(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // comm is in parentheses and may itself contain spaces or parentheses.
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const f = stat.slice(close + 2).split(" ");
      // f[0] = state (field 3); utime, stime, cutime, cstime are fields 14-17.
      const reaped = (Number(f[13]) + Number(f[14])) / HZ;
      const cpu = (Number(f[11]) + Number(f[12])) / HZ + reaped;
      const pid = Number(name);
      let cmdline = cmdlines.get(pid);
      if (cmdline === undefined) {
        cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim();
        // A process still being exec'd shows its parent's command line: keep only settled ones.
        if (cmdline !== "") cmdlines.set(pid, cmdline);
      }
      out.set(Number(name), { pid: Number(name), ppid: Number(f[1]), comm, cmdline, cpu, reaped });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export function machineBusySeconds(): number {
  let busy = 0;
  for (const c of cpus()) busy += c.times.user + c.times.nice + c.times.sys + c.times.irq;
  return busy / 1000;
}

export type Groups = Record<string, (p: Proc) => boolean>;

export interface CpuMark {
  at: number;
  machine: number;
  /** CPU seconds per pid, with the group it belongs to. */
  procs: Map<number, Classified>;
}

interface Classified {
  group: string;
  cpu: number;
  reaped: number;
}

function classify(groups: Groups, procs: Map<number, Proc>): Map<number, Classified> {
  const direct = new Map<number, string>();
  for (const p of procs.values()) {
    for (const [name, match] of Object.entries(groups)) {
      if (match(p)) {
        direct.set(p.pid, name);
        break;
      }
    }
  }
  const out = new Map<number, Classified>();
  for (const p of procs.values()) {
    let cur: Proc | undefined = p;
    for (let depth = 0; cur && depth < 64; depth++) {
      const g = direct.get(cur.pid);
      if (g) {
        out.set(p.pid, { group: g, cpu: p.cpu, reaped: p.reaped });
        break;
      }
      cur = procs.get(cur.ppid);
    }
  }
  return out;
}

export function cpuMark(groups: Groups): CpuMark {
  return { at: performance.now(), machine: machineBusySeconds(), procs: classify(groups, readProcs()) };
}

export interface CpuSample {
  wallS: number;
  /** CPU seconds per group over the interval, and "other". */
  seconds: Record<string, number>;
  /** Percent of one core per group, and "other". */
  pct: Record<string, number>;
  /** The part of `seconds` that is exited children reaped by the group's processes (programs they ran). */
  reaped: Record<string, number>;
}

/**
 * CPU per group between a mark and now. A process that started in between counts from zero; one
 * that ended in between counts only through the process that reaped it, if that one is ours.
 */
export function cpuSince(groups: Groups, a: CpuMark): CpuSample {
  const wallS = (performance.now() - a.at) / 1000;
  const machine = machineBusySeconds() - a.machine;
  const now = classify(groups, readProcs());
  const seconds: Record<string, number> = Object.fromEntries(Object.keys(groups).map((g) => [g, 0]));
  const reaped: Record<string, number> = Object.fromEntries(Object.keys(groups).map((g) => [g, 0]));
  for (const [pid, cur] of now) {
    const before = a.procs.get(pid);
    const same = before && before.group === cur.group;
    seconds[cur.group] += Math.max(0, cur.cpu - (same ? before.cpu : 0));
    reaped[cur.group] += Math.max(0, cur.reaped - (same ? before.reaped : 0));
  }
  const ours = Object.values(seconds).reduce((x, y) => x + y, 0);
  seconds.other = Math.max(0, machine - ours);
  const pct = Object.fromEntries(Object.entries(seconds).map(([g, s]) => [g, (s / wallS) * 100]));
  return { wallS, seconds, pct, reaped };
}

/** Two samples of the same groups as one (phases run in several blocks). */
export function addCpu(a: CpuSample | undefined, b: CpuSample): CpuSample {
  if (!a) return b;
  const sum = (x: Record<string, number>, y: Record<string, number>) => Object.fromEntries(Object.keys(y).map((k) => [k, (x[k] ?? 0) + y[k]]));
  const wallS = a.wallS + b.wallS;
  const seconds = sum(a.seconds, b.seconds);
  return { wallS, seconds, reaped: sum(a.reaped, b.reaped), pct: Object.fromEntries(Object.entries(seconds).map(([k, s]) => [k, (s / wallS) * 100])) };
}

/** Above this much CPU (% of one core) used by processes that are not ours, figures are suspect. */
export const NOISY_OTHER_PCT = 25;

/** The "busy machine" note of every benchmark report, or undefined when the machine was quiet. */
export function noisyNote(otherPct: number): string | undefined {
  if (!(otherPct > NOISY_OTHER_PCT)) return undefined;
  return (
    `note: other processes used up to ${Math.round(otherPct)}% of a core during a phase (load average now ${loadavg().map((l) => l.toFixed(2)).join(" ")}); ` +
    "these figures are disturbed, run again on a quiet machine"
  );
}

/** "a 12 / b 40 / other 80" (% of one core), in the groups' order. */
export function formatPct(s: CpuSample, order: string[]): string {
  return [...order, "other"].map((g) => `${g} ${Math.round(s.pct[g] ?? 0)}`).join(" · ");
}
