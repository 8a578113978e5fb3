// `npm run bench -- scale`: 5,000 pods through the whole control plane onto 500 hollow nodes.
//
//   etcd (harness) ◀── apiserver (child) ◀─┬─ scheduler (child: skiff scheduler)
//                                          ├─ controller-manager (child: skiff controller-manager)
//                                          ├─ 500 hollow node agents (ONE child: scale-hollow.ts;
//                                          │   the real agent code, fake runtime, host network)
//                                          └─ this process: creates the Deployments, follows
//                                             every pod on one Watch, scrapes /metrics
//
// Every component is its own process with its defaults (leader election on), so none shares an
// event loop with another. 50 Deployments × 100 replicas are created at once; the pods are
// followed from created (ReplicaSet controller) to bound (scheduler) to Running (the hollow
// agents' status writes), all as seen on the benchmark's watch. Then raw etcd puts of a stored
// pod's bytes at the write concurrency etcd saw during the run (Little's law on the apiserver's
// storage histogram). Verdict: ≥ 300 pods/s from the first create to the last pod Running.
import { create } from "@bufbuild/protobuf";
import { Etcd3 } from "etcd3";
import { mkdirSync, statSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem, type as osType } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Lease } from "../gen/skiff/v1alpha1/coordination_pb.js";
import { DeploymentSchema, type Deployment } from "../gen/skiff/v1alpha1/deployment_pb.js";
import type { Node } from "../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { makeTempDir, removeTempDir } from "../test/harness/tmp.ts";
import { namespace } from "../test/fixtures/objects.ts";
import { startNodeScript, startSkiff, type Daemon } from "./lib/child.ts";
import { interruptedBy, onCleanup } from "./lib/cleanup.ts";
import { ETCD_PREFIX, startBenchControlPlane } from "./lib/control-plane.ts";
import { watchPods } from "./lib/pod-watch.ts";
import { cpuMark, cpuSince, type CpuSample, type Groups } from "./lib/proc.ts";
import { scrape } from "./lib/prom.ts";
import { runLoad, sleep } from "./lib/stats.ts";
import { printScaleReport, type RawPuts } from "./scale-report.ts";
import type { HollowMessage, HollowStats } from "./scale-hollow.ts";
import { pkiFileArgs } from "../test/harness/pki.ts";

const options = {
  nodes: { type: "string", default: "500" },
  deployments: { type: "string", default: "50" },
  replicas: { type: "string", default: "100" },
  heartbeat: { type: "string", default: "10000" },
  resync: { type: "string", default: "60000" },
  connections: { type: "string", default: "10" },
  controllers: { type: "string", default: "*" },
  "concurrent-syncs": { type: "string" },
  "bind-concurrency": { type: "string" },
  puts: { type: "string", default: "5000" },
  timeout: { type: "string", default: "180000" },
  stall: { type: "string", default: "30000" },
  idle: { type: "string", default: "10000" },
  "cpu-prof": { type: "string" },
  "node-flags": { type: "string", default: "" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- scale [options]

  --nodes N               hollow nodes (default 500)
  --deployments N         Deployments created at once (default 50)
  --replicas N            replicas of each (default 100)
  --heartbeat MS          hollow agents' heartbeatMs: Lease renewal, node status check (default 10000)
  --resync MS             hollow agents' resyncMs (default 60000, the kubelet's sync frequency;
                          the agent's own default is 10000)
  --connections N         ignored: each hollow node has its own TLS connection, as its own identity (system:node:<name>)
  --controllers LIST      the controller-manager's --controllers (default "*": all of them)
  --concurrent-syncs N    the controller-manager's --concurrent-syncs (default: its own, 5)
  --bind-concurrency N    the scheduler's --bind-concurrency (default: its own, 128)
  --puts N                raw etcd puts after the run (default 5000)
  --timeout MS            give up waiting for every pod to be Running after this (default 180000)
  --stall MS              … or when nothing moved for this long (default 30000)
  --idle MS               before the run, measure each process's CPU with every node Ready and
                          no pods for this long (default 10000: one heartbeat period); the report
                          subtracts that rate from the run's CPU (0: no idle phase)
  --cpu-prof DIR          V8 CPU profiles of every child process (apiserver, scheduler,
                          controller-manager, hollow nodes) into DIR, with each one's top
                          functions in the report
  --node-flags="F …"      more node flags for the apiserver, scheduler and controller-manager
                          children (not the hollow nodes), e.g. --node-flags="--heap-growing-
                          percent=0" (with "=": the value starts with a dash); a flag given here replaces Skiff's setting
                          of that name (internal/cmd/node-memory.ts), to compare memory settings`;

const NS = "bench-scale";
const IMAGE = "skiff.bench/hollow:v1";
const hollowEntry = fileURLToPath(new URL("./scale-hollow.ts", import.meta.url));

function int(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/**
 * Where the hollow nodes keep their pod files: in memory when the host has a tmpfs for it. A real
 * node writes its pods' token files to a tmpfs too, and its /etc files to its own disk; 500
 * hollow nodes' file writes on this machine's disk (measured here: 0.1–0.25 ms of CPU per directory
 * entry made on the disk, 0.02–0.07 ms on /dev/shm; ~20 per pod) would be charged to the control
 * plane they share the machine with.
 */
function memoryDir(): string {
  try {
    return statSync("/dev/shm").isDirectory() ? "/dev/shm" : tmpdir();
  } catch {
    return tmpdir();
  }
}

/** Resolves with the hollow child's next message of `type`; rejects if it reports an error or exits. */
function nextMessage<T extends HollowMessage["type"]>(d: Daemon, type: T, timeoutMs: number): Promise<Extract<HollowMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`hollow nodes: no "${type}" after ${timeoutMs} ms:\n${d.output()}`)), timeoutMs);
    const onMessage = (m: HollowMessage) => {
      if (m.type === type) done(undefined, m as Extract<HollowMessage, { type: T }>);
      else if (m.type === "error") done(new Error(`hollow nodes failed: ${m.message}`));
    };
    const onExit = () => done(new Error(`hollow nodes exited:\n${d.output()}`));
    function done(err?: Error, m?: Extract<HollowMessage, { type: T }>) {
      clearTimeout(timer);
      d.child.off("message", onMessage);
      d.child.off("exit", onExit);
      if (err) reject(err);
      else resolve(m!);
    }
    d.child.on("message", onMessage);
    d.child.once("exit", onExit);
  });
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>, failFast?: () => string | undefined): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const why = failFast?.();
    if (why) throw new Error(`${what}: ${why}`);
    if (await check().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(250);
  }
}

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const nodes = int("nodes", v.nodes);
  const deployments = int("deployments", v.deployments);
  const replicas = int("replicas", v.replicas);
  const heartbeatMs = int("heartbeat", v.heartbeat);
  const resyncMs = int("resync", v.resync);
  const connections = int("connections", v.connections);
  const puts = int("puts", v.puts);
  const timeoutMs = int("timeout", v.timeout);
  const stallMs = int("stall", v.stall);
  const idleMs = int("idle", v.idle, 0);
  const total = deployments * replicas;
  const profDir = v["cpu-prof"];
  if (profDir) mkdirSync(profDir, { recursive: true });
  const profArgs = profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : [];
  const nodeFlags = v["node-flags"].split(/\s+/).filter((f) => f !== "");
  const nodeArgs = [...profArgs, ...nodeFlags];

  const cpu = cpus();
  console.log(`Skiff scale benchmark, ${new Date().toISOString()}`);
  console.log(`machine:     ${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${osType()} ${release()}`);
  console.log(`             load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`node:        ${process.version}`);
  if (nodeFlags.length > 0) console.log(`node flags:  ${nodeFlags.join(" ")} (apiserver, scheduler, controller-manager)`);
  const cp = await startBenchControlPlane({ inProcess: false, cpuProfDir: profDir, apiserverProcess: { nodeArgs: nodeFlags } });
  if (cp.mode !== "child process") throw new Error(`the apiserver must run as a child process here: ${cp.modeNote}`);
  console.log(`etcd:        ${cp.etcdVersion} (single member, temp dir, loopback)`);
  console.log(`apiserver:   child process (node cmd/skiff.ts apiserver)`);

  const transport = createApiTransport(cp.url, cp.credentials);
  await createResourceClient(transport, "Namespace").create(namespace(NS));
  const hollowDir = makeTempDir("skiff-bench-scale-nodes-", memoryDir());
  onCleanup(() => removeTempDir(hollowDir));

  process.stdout.write(`starting ${nodes} hollow nodes (spread over ${heartbeatMs} ms), the scheduler and the controller-manager… `);
  const t0Start = performance.now();
  const hollow = startNodeScript(hollowEntry, [cp.url, String(nodes), hollowDir, String(heartbeatMs), String(resyncMs), String(connections), IMAGE, cp.pki.dir], { ipc: true, nodeArgs: profArgs });
  const hollowReady = nextMessage(hollow, "ready", 120_000 + heartbeatMs);
  const schedArgs = ["scheduler", "--server", cp.url, ...pkiFileArgs(cp.pki, "scheduler"), "--log-level", "warn"];
  if (v["bind-concurrency"]) schedArgs.push("--bind-concurrency", String(int("bind-concurrency", v["bind-concurrency"])));
  const scheduler = startSkiff(schedArgs, { nodeArgs });
  const cmArgs = ["controller-manager", "--server", cp.url, ...pkiFileArgs(cp.pki, "controller-manager"), "--log-level", "warn", "--controllers", v.controllers];
  if (v["concurrent-syncs"]) cmArgs.push("--concurrent-syncs", String(int("concurrent-syncs", v["concurrent-syncs"])));
  const cm = startSkiff(cmArgs, { nodeArgs });
  const gone = () => [hollow, scheduler, cm].find((d) => d.exited())?.output();

  const ready = await hollowReady;
  const nodesClient = createResourceClient<Node>(transport, "Node");
  await until("every hollow node registered and Ready", 60_000, async () => {
    const { items } = await nodesClient.list("");
    return items.filter((n) => n.status?.conditions.some((c) => c.type === "Ready" && c.status === "True")).length >= nodes;
  }, gone);
  const leases = createResourceClient<Lease>(transport, "Lease");
  for (const name of ["skiff-scheduler", "skiff-controller-manager"]) {
    await until(`${name} holds its Lease`, 60_000, async () => !!(await leases.get("skiff-system", name)).spec?.holderIdentity, gone);
  }
  await sleep(2000); // the leaders' informers list and sync
  console.log(`done in ${((performance.now() - t0Start) / 1000).toFixed(1)} s (agents all started after ${(ready.ms / 1000).toFixed(1)} s)`);

  const pods = createResourceClient<Pod>(transport, "Pod");
  const watch = watchPods(pods, NS);
  await watch.ready;
  const groups: Groups = {
    bench: (p) => p.pid === process.pid,
    "hollow nodes": (p) => p.pid === hollow.pid,
    apiserver: (p) => p.pid === cp.serverPid,
    etcd: (p) => p.cmdline.includes(cp.etcd.dataDir),
    scheduler: (p) => p.pid === scheduler.pid,
    "controller-manager": (p) => p.pid === cm.pid,
  };

  // ---- idle: what the components cost per second with nothing to do (heartbeats, leases,
  // elections): over a slow run it is a large share of each pod's CPU, so the report subtracts it ----
  let idle: CpuSample | undefined;
  if (idleMs > 0) {
    process.stdout.write(`idle for ${idleMs} ms (every node Ready, no pods)… `);
    const mark = cpuMark(groups);
    await sleep(idleMs);
    idle = cpuSince(groups, mark);
    console.log("done");
  }

  // ---- the run ----
  const deps = createResourceClient<Deployment>(transport, "Deployment");
  const metricsBefore = await Promise.all([scrape(`${cp.url}/metrics`), scrape(cp.etcd.metricsUrl)]);
  hollow.child.send({ type: "mark" });
  const cpu0 = cpuMark(groups);
  const timeline: { t: number; added: number; bound: number; running: number }[] = [];
  const t0 = performance.now();
  const t0Us = Number(process.hrtime.bigint() / 1000n);
  console.log(`creating ${deployments} Deployments × ${replicas} replicas = ${total} pods, following them on a watch…`);
  const depLatencies = await runLoad(deployments, 10, (i) => {
    const name = `dep-${String(i).padStart(3, "0")}`;
    const labels = { app: name };
    return deps.create(
      create(DeploymentSchema, {
        metadata: { name, namespace: NS },
        spec: {
          replicas,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: "app", image: IMAGE, imagePullPolicy: "IfNotPresent" }] } },
        },
      }),
    );
  });
  let lastProgress = performance.now();
  let lastRunning = -1;
  let lastPrint = t0;
  let endReason = "every pod Running";
  for (;;) {
    const c = watch.counts();
    const now = performance.now();
    timeline.push({ t: now - t0, ...c });
    if (c.running >= total) break;
    if (c.running !== lastRunning) {
      lastRunning = c.running;
      lastProgress = now;
    }
    if (now - lastPrint >= 5000) {
      lastPrint = now;
      console.log(`  ${((now - t0) / 1000).toFixed(0).padStart(4)} s: created ${c.added}, bound ${c.bound}, Running ${c.running}`);
    }
    if (interruptedBy()) throw new Error("interrupted");
    const why = gone();
    if (why) throw new Error(`a component exited during the run:\n${why}`);
    if (now - t0 > timeoutMs) {
      endReason = `timed out after ${timeoutMs} ms`;
      break;
    }
    if (now - lastProgress > stallMs) {
      endReason = `stalled: no pod became Running for ${stallMs} ms`;
      break;
    }
    await sleep(200);
  }
  const tEnd = performance.now();
  const tEndUs = Number(process.hrtime.bigint() / 1000n);
  const cpuRun = cpuSince(groups, cpu0);
  const hollowStats = (await Promise.all([nextMessage(hollow, "stats", 10_000), hollow.child.send({ type: "stats" })]))[0] as HollowStats;
  const metricsAfter = await Promise.all([scrape(`${cp.url}/metrics`), scrape(cp.etcd.metricsUrl)]);
  console.log(`  ${((tEnd - t0) / 1000).toFixed(1)} s: ${endReason}`);

  // ---- raw etcd puts of a stored pod, at the concurrency etcd saw during the run ----
  const etcd = new Etcd3({ hosts: [cp.etcd.endpoint], credentials: { rootCertificate: Buffer.from(cp.etcd.tls.ca), certChain: Buffer.from(cp.etcd.tls.cert), privateKey: Buffer.from(cp.etcd.tls.key) } });
  onCleanup(() => etcd.close());
  const runningPod = [...watch.pods.values()].find((s) => s.running !== undefined);
  const stored = runningPod ? await etcd.get(`${ETCD_PREFIX}/registry/pods/${NS}/${runningPod.name}`).buffer() : null;
  let raw: RawPuts[] = [];
  if (stored) {
    const storageSum = (m: Map<string, number>, suffix: string) => {
      let s = 0;
      for (const [k, val] of m) if (k.startsWith(`skiff_storage_request_duration_seconds_${suffix}{`) && /operation="(create|update|delete)"/.test(k)) s += val;
      return s;
    };
    const busyS = storageSum(metricsAfter[0], "sum") - storageSum(metricsBefore[0], "sum");
    const littleConc = Math.max(1, Math.round(busyS / ((tEnd - t0) / 1000)));
    const concs = [...new Set([littleConc, 64])];
    process.stdout.write(`raw etcd puts: ${puts} × ${stored.length} bytes (a stored Running pod) at concurrency ${concs.join(" and ")}… `);
    raw = [];
    for (const c of concs) {
      const res = await runLoad(puts, c, (i) => etcd.kv.put({ key: Buffer.from(`/bench-raw/pods/${c}/${i}`), value: stored }));
      raw.push({ concurrency: c, latencies: res.latencies, wallMs: res.wallMs, bytes: stored.length, why: c === littleConc ? "as during the run" : "for headroom" });
    }
    console.log("done");
  }

  // Stop the children now (cleanup would too) so that their CPU profiles are written for the report.
  if (profDir) {
    process.stdout.write("stopping the components (writing their CPU profiles)… ");
    await Promise.all([hollow.stop(), scheduler.stop(), cm.stop()]);
    await cp.stopServer();
    console.log("done");
  }

  printScaleReport({
    nodes,
    deployments,
    replicas,
    heartbeatMs,
    resyncMs,
    t0,
    tEnd,
    endReason,
    depCreateMs: depLatencies.latencies,
    sightings: [...watch.pods.values()],
    timeline,
    metricsBefore,
    metricsAfter,
    cpu: cpuRun,
    idleCpu: idle,
    groupOrder: Object.keys(groups),
    hollow: hollowStats,
    raw,
    profiles: profDir
      ? { dir: profDir, pids: { apiserver: cp.serverPid, "hollow nodes": hollow.pid, scheduler: scheduler.pid, "controller-manager": cm.pid }, fromUs: t0Us, toUs: tEndUs }
      : undefined,
  });
}
