// `npm run bench -- api`: apiserver latency against real etcd, next to etcd's own.
//
//   raw etcd   put, and the create-if-absent txn the store really sends, straight from the etcd3
//              client, at the API create concurrency, with the bytes of a stored ConfigMap
//   api        create, get (N ops at concurrency C) and list (a namespace of L objects) through
//              the typed gRPC client; creates run in rounds interleaved with the raw etcd blocks,
//              so disk hiccups and other load on the machine hit both sides of the ratio alike
//   watch      W watch streams, then writes spaced apart; delay from write to each delivery
//   pipeline   the cost per call of authentication + authorization (api-auth.ts)
//
// Everything runs over TLS with the admin's client certificate (the run's PKI, like skiff up's).
// and verdicts on the targets: create p99 ≤ 3× raw put p99; watch delivery p99 ≤ 100 ms.
import type { Transport } from "@connectrpc/connect";
import { Etcd3 } from "etcd3";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { parseArgs } from "node:util";
import type { ConfigMap } from "../gen/skiff/v1alpha1/config_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { configMap, namespace } from "../test/fixtures/objects.ts";
import { measurePipelineCost } from "./api-auth.ts";
import { watchDelivery } from "./api-watch.ts";
import { printReport, type PhaseReport } from "./api-report.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { ETCD_PREFIX, startBenchControlPlane } from "./lib/control-plane.ts";
import { addSamples, probeEnd, probeStart, type ProbeSources, type Sample } from "./lib/probe.ts";
import { runLoad } from "./lib/stats.ts";

const options = {
  ops: { type: "string", default: "2000" },
  concurrency: { type: "string", default: "8" },
  rounds: { type: "string", default: "5" },
  "list-size": { type: "string", default: "500" },
  lists: { type: "string", default: "200" },
  "list-concurrency": { type: "string", default: "4" },
  watchers: { type: "string", default: "1000" },
  "watch-connections": { type: "string", default: "10" },
  "watch-threads": { type: "string", default: "1" },
  "watch-writes": { type: "string", default: "100" },
  "watch-interval": { type: "string", default: "100" },
  "in-process": { type: "boolean", default: false },
  "cpu-prof": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- api [options]

  --ops N                 creates, gets and raw etcd puts/txns each (default 2000)
  --concurrency N         operations in flight for create/get/put (default 8)
  --rounds N              blocks the creates and raw etcd writes are interleaved in (default 5)
  --list-size N           objects in the listed namespace (default 500)
  --lists N               list calls (default 200)
  --list-concurrency N    list calls in flight (default 4)
  --watchers N            concurrent watch streams; 0 skips the watch phase (default 1000)
  --watch-connections N   HTTP/2 connections the watchers are spread over (default 10)
  --watch-threads N       worker threads the watchers are spread over (default 1)
  --watch-writes N        writes during the watch phase (default 100)
  --watch-interval MS     time between those writes (default 100)
  --in-process            run the apiserver in this process instead of as a child
  --cpu-prof DIR          write a V8 CPU profile of the apiserver child to DIR when it exits`;

function int(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

// About the size of a small real ConfigMap (an env file), so encode/decode and etcd costs are
// not those of an empty object.
const payload: Record<string, string> = {
  "app.properties": Array.from({ length: 8 }, (_, i) => `setting.${i}=value-${i}-${"x".repeat(16)}`).join("\n"),
  mode: "benchmark",
};

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const n = int("ops", v.ops);
  const conc = int("concurrency", v.concurrency);
  const rounds = Math.min(n, int("rounds", v.rounds));
  const listSize = int("list-size", v["list-size"]);
  const lists = int("lists", v.lists);
  const listConc = int("list-concurrency", v["list-concurrency"]);
  const watchers = int("watchers", v.watchers, 0);
  const watchConns = int("watch-connections", v["watch-connections"]);
  const watchThreads = int("watch-threads", v["watch-threads"]);
  const watchWrites = int("watch-writes", v["watch-writes"]);
  const watchInterval = int("watch-interval", v["watch-interval"], 0);

  const cpu = cpus();
  console.log(`Skiff API benchmark, ${new Date().toISOString()}`);
  console.log(`machine:   ${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${osType()} ${release()}`);
  console.log(`           load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`node:      ${process.version}`);
  const cp = await startBenchControlPlane({ inProcess: v["in-process"], cpuProfDir: v["cpu-prof"] });
  console.log(`etcd:      ${cp.etcdVersion} (single member, temp dir, loopback)`);
  console.log(`apiserver: ${cp.mode}: ${cp.modeNote}`);
  if (v["cpu-prof"] && cp.mode === "child process") console.log(`           its CPU profile goes to ${v["cpu-prof"]} when it exits`);

  const transport: Transport = createApiTransport(cp.url, cp.credentials);
  const cms = createResourceClient<ConfigMap>(transport, "ConfigMap");
  const namespaces = createResourceClient(transport, "Namespace");
  const etcd = new Etcd3({ hosts: [cp.etcd.endpoint], credentials: { rootCertificate: Buffer.from(cp.etcd.tls.ca), certChain: Buffer.from(cp.etcd.tls.cert), privateKey: Buffer.from(cp.etcd.tls.key) } });
  onCleanup(() => etcd.close());
  for (const ns of ["bench", "bench-list", "bench-watch"]) await namespaces.create(namespace(ns));

  // Warm-up, untimed: fills the listed namespace and lets both sides' JITs settle.
  process.stdout.write("\nwarming up… ");
  await runLoad(listSize, conc, (i) => cms.create(configMap(`item-${i}`, payload, "bench-list")));
  await runLoad(Math.min(listSize, 500), conc, (i) => cms.get("bench-list", `item-${i}`));
  await runLoad(10, listConc, () => cms.list("bench-list"));
  const stored = await etcd.get(`${ETCD_PREFIX}/registry/configmaps/bench-list/item-0`).buffer();
  if (!stored) throw new Error("cannot find a stored ConfigMap in etcd (is the key layout /registry/configmaps/<ns>/<name>?)");
  await runLoad(500, conc, (i) => etcd.kv.put({ key: Buffer.from(`/bench-warmup/${i}`), value: stored }));
  console.log("done");

  const handler = (method: string): [string, Record<string, RegExp>] => [
    "skiff_apiserver_request_duration_seconds",
    { service: /ConfigMap/, method: new RegExp(`^${method}$`) },
  ];
  const storage = (op: string): [string, Record<string, RegExp>] => ["skiff_storage_request_duration_seconds", { operation: new RegExp(`^${op}$`) }];
  const sources: ProbeSources = {
    serverMetrics: `${cp.url}/metrics`,
    etcdMetrics: cp.etcd.metricsUrl,
    sameProcess: cp.mode === "in-process",
    histograms: {
      "handler:create": handler("Create"),
      "handler:get": handler("Get"),
      "handler:list": handler("List"),
      "storage:create": storage("create"),
      "storage:get": storage("get"),
      "storage:list": storage("list"),
    },
  };

  const phase = (name: string, concurrency: number, server?: string): PhaseReport => ({ name, concurrency, latencies: [], wallMs: 0, server });
  /** Runs ops first … first+count-1 of a phase and adds them to it. */
  const block = async (p: PhaseReport, first: number, count: number, op: (i: number) => Promise<unknown>) => {
    const mark = await probeStart(sources);
    const res = await runLoad(count, p.concurrency, (i) => op(first + i));
    const sample: Sample = await probeEnd(sources, mark);
    p.latencies.push(...res.latencies);
    p.wallMs += res.wallMs;
    p.sample = addSamples(p.sample, sample);
  };

  const put = phase("etcd put (raw)", conc);
  const txn = phase("etcd create txn (raw)", conc);
  const create = phase("api create", conc, "create");
  const writers: [PhaseReport, (i: number) => Promise<unknown>][] = [
    [put, (i) => etcd.kv.put({ key: Buffer.from(`/bench-raw/put/${i}`), value: stored })],
    [
      txn,
      (i) => {
        const key = Buffer.from(`/bench-raw/txn/${i}`);
        return etcd.kv.txn({ compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }], success: [{ request_put: { key, value: stored } }], failure: [] });
      },
    ],
    [create, (i) => cms.create(configMap(`cm-${i}`, payload, "bench"))],
  ];
  process.stdout.write(`raw etcd put, raw etcd txn and api create, interleaved in ${rounds} rounds… `);
  for (let r = 0; r < rounds; r++) {
    const first = Math.floor((r * n) / rounds);
    const count = Math.floor(((r + 1) * n) / rounds) - first;
    // Rotate the order every round so that none always runs right after another.
    for (let k = 0; k < writers.length; k++) {
      const [p, op] = writers[(r + k) % writers.length];
      await block(p, first, count, op);
    }
  }
  console.log("done");

  process.stdout.write("api get… ");
  const get = phase("api get", conc, "get");
  await block(get, 0, n, (i) => cms.get("bench", `cm-${i}`));
  console.log("done");

  process.stdout.write("api list… ");
  const list = phase(`api list (${listSize} objects)`, listConc, "list");
  await block(list, 0, lists, async () => {
    const { items } = await cms.list("bench-list");
    if (items.length !== listSize) throw new Error(`list returned ${items.length} objects, expected ${listSize}`);
  });
  console.log("done");

  let watch;
  let watchSample: Sample | undefined;
  if (watchers > 0) {
    process.stdout.write(`watch: ${watchers} watchers, ${watchWrites} writes… `);
    let mark: Awaited<ReturnType<typeof probeStart>> | undefined;
    watch = await watchDelivery({
      url: cp.url,
      credentials: cp.credentials,
      namespace: "bench-watch",
      watchers,
      connections: watchConns,
      threads: watchThreads,
      writes: watchWrites,
      intervalMs: watchInterval,
      payload,
      establishTimeoutMs: 60_000,
      drainTimeoutMs: 10_000,
      beforeWrites: async () => {
        mark = await probeStart(sources);
      },
      afterWrites: async () => {
        watchSample = await probeEnd(sources, mark!);
      },
    });
    console.log("done");
  }

  process.stdout.write("request pipeline (authentication + authorization) per call… ");
  const auth = await measurePipelineCost();
  console.log("done");

  printReport({
    storedBytes: stored.length,
    phases: [put, txn, create, get, list],
    ratio: { api: create, raw: put },
    watch: watch && { result: watch, intervalMs: watchInterval, sample: watchSample },
  });
  console.log(
    `\nrequest pipeline per call (in-process microbenchmark, ${auth.calls} calls, best of 3): ` +
      `client certificate ${auth.certNs.toFixed(0)} ns, static token ${auth.tokenNs.toFixed(0)} ns, ` +
      `certificate + impersonation ${auth.impersonationNs.toFixed(0)} ns (authorizer: allow-authenticated). ` +
      `Every call above ran through it over TLS as the admin.`,
  );
}
