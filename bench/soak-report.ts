// The soak's closing lines: what the RSS growth is made of where it is known (memory glibc's
// malloc held free in the apiserver and the agent; etcd's raft log kept in memory until a snapshot), then the
// verdict against the targets (nothing leaked, no fd growth, RSS growth < 10 % after the warm-up).
import type { Scrape } from "./lib/prom.ts";
import { renderTable } from "./lib/table.ts";
import type { mallocTrim } from "./soak-malloc.ts";
import { readFileSync } from "node:fs";
import type { Inventory, InventoryScope } from "./soak-inventory.ts";

/** Lowest and highest RSS (KiB) of each process over the first and the last tenth of the timed cycles. */
export type RssWindows = Record<string, { first: [number, number]; last: [number, number] }>;

/** Samples RSS of `processes` every second, tagged with the timed cycles done so far. */
export function trackRss(processes: Record<string, number>, cyclesDone: () => number) {
  const samples: [number, Record<string, number>][] = [];
  const take = () => {
    const rss: Record<string, number> = {};
    for (const [name, pid] of Object.entries(processes)) {
      try {
        rss[name] = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
      } catch {
        rss[name] = NaN;
      }
    }
    samples.push([cyclesDone(), rss]);
  };
  const timer = setInterval(take, 1000);
  timer.unref();
  return {
    stop(cycles: number): RssWindows {
      clearInterval(timer);
      take();
      const tenth = Math.max(1, Math.floor(cycles / 10));
      const range = (name: string, inWindow: (n: number) => boolean): [number, number] => {
        const v = samples.filter(([n]) => inWindow(n)).map(([, r]) => r[name]).filter((x) => !Number.isNaN(x));
        return [Math.min(...v), Math.max(...v)];
      };
      return Object.fromEntries(Object.keys(processes).map((p) => [p, { first: range(p, (n) => n <= tenth), last: range(p, (n) => n >= cycles - tenth) }]));
    },
  };
}

export interface VerdictInput {
  scope: InventoryScope;
  before: Inventory;
  after: Inventory;
  leaks: string[];
  warmup: number;
  cycles: number;
  /** malloc_trim(0) by process name. */
  trim: Record<string, ReturnType<typeof mallocTrim>>;
  etcdBefore?: Scrape;
  etcdAfter?: Scrape;
  rssWindows: RssWindows;
}

/** What the RSS growth is made of where it is known, then the verdict against the targets. */
export function printVerdict({ scope, before, after, leaks, warmup, cycles, trim, etcdBefore, etcdAfter, rssWindows }: VerdictInput): void {
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const pct = (from: number, to: number) => `${to >= from ? "+" : ""}${(((to - from) / from) * 100).toFixed(1)} %`;
  for (const [name, t] of Object.entries(trim)) {
    const label = `${name}:`.padEnd(11);
    if ("error" in t) console.log(`\n${label} malloc_trim not measured: ${t.error}`);
    else {
      console.log(
        `${label} RSS ${mib(t.beforeKiB)} MiB at the end; malloc_trim(0) (gdb) gave ${mib(t.beforeKiB - t.afterKiB)} MiB back → ` +
          `${mib(t.afterKiB)} MiB, ${pct(before.rssKiB[name], t.afterKiB)} against after the warm-up: that much of its RSS was memory glibc's malloc held free, not live objects`,
      );
    }
  }
  const committed = (m?: Scrape) => m?.get("etcd_server_proposals_committed_total") ?? NaN;
  const snaps = (m?: Scrape) => m?.get("etcd_debugging_snap_save_total_duration_seconds_count") ?? NaN;
  const entries = committed(etcdAfter) - committed(etcdBefore);
  const snapshotCount = Number(process.env.ETCD_SNAPSHOT_COUNT ?? 100_000);
  console.log(
    `etcd:       ${entries} raft entries in the timed cycles (${(entries / cycles).toFixed(1)} per cycle), ${snaps(etcdAfter) - snaps(etcdBefore)} snapshots saved. ` +
      `etcd keeps its raft log since the last snapshot in memory (--snapshot-count ${snapshotCount}): its RSS climbs for ~${Math.round(snapshotCount / (entries / cycles))} cycles, ` +
      `then drops at each snapshot (a saw, bounded: \`bench soak-etcd\`). ` +
      (snaps(etcdBefore) > 0
        ? `The ${warmup}-cycle warm-up covered that fill (${snaps(etcdBefore)} snapshot${snaps(etcdBefore) === 1 ? "" : "s"} saved in it).`
        : `The ${warmup}-cycle warm-up does not cover that fill (no snapshot in it).`),
  );
  const fdLeaks = Object.keys(scope.processes).filter((p) => after.fds[p] > before.fds[p]);
  const tenth = Math.max(1, Math.floor(cycles / 10));
  console.log(`\nRSS MiB low–high over the first and the last ${tenth} timed cycles (read every second):`);
  console.log(renderTable(
    ["process", "first: low", "high", "last: low", "high", "growth of the low", "of the high"],
    Object.entries(rssWindows).map(([p, w]) => [p, mib(w.first[0]), mib(w.first[1]), mib(w.last[0]), mib(w.last[1]), pct(w.first[0], w.last[0]), pct(w.first[1], w.last[1])]),
  ));
  const snapshotsInRun = snaps(etcdAfter) - snaps(etcdBefore);
  const rss = Object.entries(rssWindows).map(([p, w]) => {
    const lowWithin = w.last[0] <= w.first[0] * 1.1;
    const highWithin = w.last[1] <= w.first[1] * 1.1;
    const figures = `${p} low ${pct(w.first[0], w.last[0])}, high ${pct(w.first[1], w.last[1])}`;
    // etcd's high point follows its raft log (since the last snapshot), which rises and falls
    // with the snapshots: where the two windows fall in that saw sets the high's difference. A
    // snapshot in the timed cycles and a low point where it was tell the saw from retention.
    if (p === "etcd" && lowWithin && !highWithin && snapshotsInRun > 0) return `${figures} (the high is its raft-log saw: ${snapshotsInRun} snapshot(s) in the run, the low where it was)`;
    return `${figures}${lowWithin && highWithin ? "" : " (OVER 10 %)"}`;
  });
  console.log(
    `\nverdict:    ${leaks.length === 0 ? "no leaked node objects" : `LEAKED: ${leaks.join(", ")}`}; ` +
      `${fdLeaks.length === 0 ? "no fd growth" : `fds grew in ${fdLeaks.join(", ")}`}; ` +
      `RSS growth from the first to the last tenth of the timed cycles (target < 10 %): ${rss.join("; ")}`,
  );
}
