// `npm run bench -- store-writes`: CPU per storage write (the etcd store of internal/storage, on a
// real etcd over TLS) in this process (the apiserver's side of the call) and in etcd, for the
// writes a pod costs: an update of a pod-sized value (≈ 1.2 KB), lone (one at a time, each waking
// both processes up on its own) and concurrent (CONCURRENCY at once), and a create. Load
// independent enough to compare a change in the store's write path before/after on one machine.
// Last, the etcd txn an update sends, with and without prev_kv (the previous version returned,
// which the store no longer asks for) in alternating blocks on one connection: both variants see
// the same load, so the difference stands out of a busy machine's noise.
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { create as createMessage } from "@bufbuild/protobuf";
import { Compare_CompareResult, Compare_CompareTarget, CompareSchema, RequestOpSchema } from "../gen/etcd/api/etcdserverpb/rpc_pb.js";
import { createEtcdConnections } from "../internal/storage/etcd-endpoints.ts";
import { createEtcdStore } from "../internal/storage/etcd.ts";
import { startEtcd } from "../test/harness/etcd.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { cpuMark, cpuSince, type Groups } from "./lib/proc.ts";
import { renderTable } from "./lib/table.ts";

const options = {
  ops: { type: "string", default: "4000" },
  "value-bytes": { type: "string", default: "1200" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- store-writes [options]

  --ops N            writes per phase (default 4000)
  --value-bytes N    size of each value written (default 1200, about a pod's)`;

const CONCURRENCY = 10;

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const n = Number(v.ops);
  const size = Number(v["value-bytes"]);
  console.log(`Skiff store-writes benchmark, ${new Date().toISOString()}; ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const etcd = await startEtcd();
  onCleanup(() => etcd.stop());
  const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/bench", tls: etcd.tls });
  onCleanup(() => store.close());
  // This process's CPU comes from process.cpuUsage (µs); etcd's from /proc (10 ms ticks).
  const groups: Groups = { etcd: (p) => p.cmdline.includes(etcd.dataDir) };

  // Each key holds a value that changes on every write (a status update's new time, say).
  const value = (i: number) => {
    const b = Buffer.alloc(size, 0x61 + (i % 26));
    b.writeUInt32BE(i >>> 0, 0);
    return b;
  };
  const keys = Array.from({ length: CONCURRENCY * 10 }, (_, i) => `/pods/default/p-${i}`);
  const revs = new Map<string, number>();
  for (const k of keys) revs.set(k, (await store.create(k, value(0))).modRevision);
  let seq = 1;
  const updateOne = async (k: string) => revs.set(k, (await store.update(k, value(seq++), revs.get(k)!)).modRevision);

  const rows: string[][] = [];
  async function phase(name: string, body: () => Promise<void>): Promise<void> {
    await body(); // warm-up, not counted
    const mark = cpuMark(groups);
    const own = process.cpuUsage();
    const t0 = performance.now();
    await body();
    const ms = performance.now() - t0;
    const ownUs = process.cpuUsage(own);
    const cpu = cpuSince(groups, mark);
    rows.push([name, ((ownUs.user + ownUs.system) / n).toFixed(0), ((cpu.seconds.etcd * 1e6) / n).toFixed(0), ((n * 1000) / ms).toFixed(0)]);
  }

  await phase("update, lone", async () => {
    for (let i = 0; i < n; i++) await updateOne(keys[i % keys.length]);
  });
  await phase(`update, ${CONCURRENCY} at once`, async () => {
    for (let i = 0; i < n; i += CONCURRENCY) {
      const from = i % keys.length;
      await Promise.all(keys.slice(from, from + CONCURRENCY).map(updateOne));
    }
  });
  let created = 0;
  await phase("create, lone", async () => {
    for (let i = 0; i < n; i++) await store.create(`/pods/default/c-${created++}`, value(i));
  });
  console.log(renderTable(["phase", "store µs CPU/op", "etcd µs CPU/op", "ops/s"], rows));

  // The raw update txn, prev_kv on / off, CONCURRENCY at once, alternating blocks of BLOCK ops.
  const conns = createEtcdConnections({ endpoints: [etcd.endpoint], tls: etcd.tls, dialTimeoutMs: 2000, requestTimeoutMs: 10_000, onChange: () => {} });
  onCleanup(() => conns.close());
  const kv = conns.kv[0].kv;
  const rawKeys = keys.map((k) => Buffer.from(`/bench/raw${k}`)); // the store's prefix + its key
  const rawRevs = new Map<Buffer, bigint>();
  for (const [i, key] of rawKeys.entries()) rawRevs.set(key, BigInt((await store.create(`/raw${keys[i]}`, value(0))).modRevision));
  const putTxn = async (key: Buffer, prevKv: boolean) => {
    const { Equal } = Compare_CompareResult;
    const res = await kv.txn({
      compare: [createMessage(CompareSchema, { key, target: Compare_CompareTarget.Mod, result: Equal, targetUnion: { case: "modRevision", value: rawRevs.get(key)! } })],
      success: [createMessage(RequestOpSchema, { request: { case: "requestPut", value: { key, value: value(seq++), prevKv } } })],
      failure: [createMessage(RequestOpSchema, { request: { case: "requestRange", value: { key } } })],
    });
    if (!res.succeeded) throw new Error("raw txn: precondition failed");
    rawRevs.set(key, res.header!.revision);
  };
  const BLOCK = 500;
  const totals = { on: { own: 0, etcd: 0, ops: 0 }, off: { own: 0, etcd: 0, ops: 0 } };
  for (let done = 0; done < 2 * n; done += BLOCK) {
    const variant = (done / BLOCK) % 2 === 0 ? "on" : "off";
    const mark = cpuMark(groups);
    const own = process.cpuUsage();
    for (let i = 0; i < BLOCK; i += CONCURRENCY) {
      const from = i % rawKeys.length;
      await Promise.all(rawKeys.slice(from, from + CONCURRENCY).map((key) => putTxn(key, variant === "on")));
    }
    const ownUs = process.cpuUsage(own);
    totals[variant].own += ownUs.user + ownUs.system;
    totals[variant].etcd += cpuSince(groups, mark).seconds.etcd * 1e6;
    totals[variant].ops += BLOCK;
  }
  const raw = (v: "on" | "off") => [`update txn, prev_kv ${v}`, (totals[v].own / totals[v].ops).toFixed(0), (totals[v].etcd / totals[v].ops).toFixed(0)];
  console.log(`\nthe update txn alone, ${CONCURRENCY} at once, alternating blocks of ${BLOCK}`);
  console.log(renderTable(["request", "client µs CPU/op", "etcd µs CPU/op"], [raw("on"), raw("off")]));
}
