// The soak's closing lines: what the RSS growth is made of where it is known (memory glibc's
// malloc held free in the apiserver; etcd's raft log kept in memory until a snapshot), then the
// verdict against the targets (nothing leaked, no fd growth, RSS growth < 10 % after the warm-up).
import type { Scrape } from "./lib/prom.ts";
import type { mallocTrim } from "./soak-malloc.ts";
import type { Inventory, InventoryScope } from "./soak-inventory.ts";

export interface VerdictInput {
  scope: InventoryScope;
  before: Inventory;
  after: Inventory;
  leaks: string[];
  warmup: number;
  cycles: number;
  trim: ReturnType<typeof mallocTrim>;
  etcdBefore?: Scrape;
  etcdAfter?: Scrape;
}

/** What the RSS growth is made of where it is known, then the verdict against the targets. */
export function printVerdict({ scope, before, after, leaks, warmup, cycles, trim, etcdBefore, etcdAfter }: VerdictInput): void {
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const pct = (from: number, to: number) => `${to >= from ? "+" : ""}${(((to - from) / from) * 100).toFixed(1)} %`;
  const apiBefore = before.rssKiB.apiserver;
  if ("error" in trim) console.log(`
apiserver:  malloc_trim not measured: ${trim.error}`);
  else {
    console.log(
      `
apiserver:  RSS ${mib(trim.beforeKiB)} MiB at the end; malloc_trim(0) (gdb) gave ${mib(trim.beforeKiB - trim.afterKiB)} MiB back → ` +
        `${mib(trim.afterKiB)} MiB, ${pct(apiBefore, trim.afterKiB)} against after the warm-up: that much of its RSS was memory glibc's malloc held free, not live objects`,
    );
  }
  const committed = (m?: Scrape) => m?.get("etcd_server_proposals_committed_total") ?? NaN;
  const snaps = (m?: Scrape) => m?.get("etcd_debugging_snap_save_total_duration_seconds_count") ?? NaN;
  const entries = committed(etcdAfter) - committed(etcdBefore);
  const snapshotCount = Number(process.env.ETCD_SNAPSHOT_COUNT ?? 100_000);
  console.log(
    `etcd:       ${entries} raft entries in the timed cycles (${(entries / cycles).toFixed(1)} per cycle), ${snaps(etcdAfter) - snaps(etcdBefore)} snapshots saved. ` +
      `etcd keeps its raft log since the last snapshot in memory (--snapshot-count ${snapshotCount}): its RSS climbs for ~${Math.round(snapshotCount / (entries / cycles))} cycles, ` +
      `then drops at each snapshot (a saw, bounded: \`bench soak-etcd\`). The ${warmup}-cycle warm-up does not cover that fill.`,
  );
  const fdLeaks = Object.keys(scope.processes).filter((p) => after.fds[p] > before.fds[p]);
  const rss = Object.keys(scope.processes).map((p) => {
    const over = !(after.rssKiB[p] <= before.rssKiB[p] * 1.1);
    return `${p} ${pct(before.rssKiB[p], after.rssKiB[p])}${over ? " (OVER 10 %)" : ""}`;
  });
  console.log(
    `\nverdict:    ${leaks.length === 0 ? "no leaked node objects" : `LEAKED: ${leaks.join(", ")}`}; ` +
      `${fdLeaks.length === 0 ? "no fd growth" : `fds grew in ${fdLeaks.join(", ")}`}; ` +
      `RSS growth after the ${warmup}-cycle warm-up (target < 10 %): ${rss.join(", ")}`,
  );
}
