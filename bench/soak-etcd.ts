// `npm run bench -- soak-etcd`: etcd alone under the write pattern of the pod soak, much faster
// than pods can churn, to tell whether etcd's memory levels off and where. Each "cycle" writes
// what one pod's life writes (create, status updates, delete: --writes-per-cycle puts of
// --value-bytes, then a delete) on --concurrency keys at once, compacting every --compact-every
// writes to the revision one interval ago (the apiserver's compactor). Sampled every --sample-every
// writes: etcd's RSS, its Go heap in use, its database file and the part of it in use, and how
// many raft entries it holds in memory (applied index − index of its last snapshot, estimated
// from --snapshot-count). etcd keeps up to --snapshot-count entries of its raft log in memory
// (plus 5,000 for followers to catch up): etcd 3.4's default is 100,000, etcd 3.6's 10,000.
import { Etcd3 } from "etcd3";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { startEtcd } from "../test/harness/etcd.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { scrape } from "./lib/prom.ts";
import { renderTable } from "./lib/table.ts";
import { serverPid } from "./soak-inventory.ts";

const options = {
  writes: { type: "string", default: "150000" },
  "snapshot-count": { type: "string", default: "" },
  "writes-per-cycle": { type: "string", default: "8" },
  "value-bytes": { type: "string", default: "1500" },
  concurrency: { type: "string", default: "20" },
  "compact-every": { type: "string", default: "10000" },
  "sample-every": { type: "string", default: "10000" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- soak-etcd [options]

  --writes N            writes in all (default 150000: past the first snapshot at etcd 3.4's default)
  --snapshot-count N    etcd's --snapshot-count (default: etcd's own, 100000 for 3.4)
  --writes-per-cycle N  puts per key before it is deleted, like one pod's life (default 8)
  --value-bytes N       bytes per put (default 1500, a stored pod)
  --concurrency N       keys churned at once (default 20)
  --compact-every N     compact every N writes to the revision N writes ago (default 10000)
  --sample-every N      sample etcd every N writes (default 10000)`;

function int(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const total = int("writes", v.writes);
  const perCycle = int("writes-per-cycle", v["writes-per-cycle"]);
  const valueBytes = int("value-bytes", v["value-bytes"]);
  const conc = int("concurrency", v.concurrency);
  const compactEvery = int("compact-every", v["compact-every"]);
  const sampleEvery = int("sample-every", v["sample-every"]);
  // etcd takes every flag from ETCD_<FLAG> too: the harness passes its environment on.
  if (v["snapshot-count"] !== "") process.env.ETCD_SNAPSHOT_COUNT = String(int("snapshot-count", v["snapshot-count"]));
  const etcd = await startEtcd();
  onCleanup(() => etcd.stop());
  const pid = serverPid("etcd", etcd.dataDir);
  if (!pid) throw new Error("etcd's pid not found");
  const client = new Etcd3({ hosts: [etcd.endpoint], credentials: { rootCertificate: Buffer.from(etcd.tls.ca), certChain: Buffer.from(etcd.tls.cert), privateKey: Buffer.from(etcd.tls.key) } });
  onCleanup(() => client.close());
  console.log(`etcd soak: ${total} writes (${perCycle} puts of ${valueBytes} B then a delete per key), ${conc} at a time, compaction every ${compactEvery} writes; --snapshot-count ${process.env.ETCD_SNAPSHOT_COUNT ?? "(etcd's default)"}`);

  const rssMiB = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
  const rows: (string | number)[][] = [];
  const sample = async (writes: number) => {
    const m = await scrape(etcd.metricsUrl);
    const mib = (k: string) => ((m.get(k) ?? NaN) / 1048576).toFixed(1);
    rows.push([writes, rssMiB().toFixed(1), mib("go_memstats_heap_inuse_bytes"), mib("etcd_mvcc_db_total_size_in_bytes"), mib("etcd_mvcc_db_total_size_in_use_in_bytes"), m.get("etcd_server_proposals_committed_total") ?? "?", m.get("etcd_debugging_snap_save_total_duration_seconds_count") ?? "?"]);
    console.log(`            ${rows.at(-1)!.join("  ")}`);
  };
  await sample(0);

  const value = Buffer.alloc(valueBytes, "x");
  let writes = 0;
  let nextKey = 0;
  let compactAt = compactEvery;
  let compactTo = 0;
  let sampleAt = sampleEvery;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (writes < total) {
        const key = `/soak/pods/p-${nextKey++}`;
        for (let i = 0; i < perCycle && writes < total; i++) {
          const res = await client.put(key).value(value).exec();
          if (++writes >= sampleAt) {
            sampleAt += sampleEvery;
            await sample(writes);
          }
          if (writes >= compactAt) {
            compactAt += compactEvery;
            const to = compactTo;
            compactTo = Number(res.header.revision);
            if (to > 0) await client.kv.compact({ revision: String(to), physical: false });
          }
        }
        await client.delete().key(key).exec();
        writes++;
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  console.log(`\n${writes} writes in ${s.toFixed(0)} s (${(writes / s).toFixed(0)}/s)\n`);
  console.log(renderTable(["writes", "etcd RSS MiB", "Go heap in use MiB", "db file MiB", "db in use MiB", "raft index", "snapshots saved"], rows));
}
