// `npm run bench -- soak`: pod churn on one real node, then an inventory of what is left.
//
// N create → Running → delete → gone cycles (default 2,000, 20 in flight), each pod bound to the
// node (no scheduler) running `sleep 3600`; then, once the namespace is empty, the node is counted
// again (soak-inventory.ts: netns, veths, host-local IPs, NAT rules, cgroups, mounts, containerd
// containers/tasks/snapshots/leases, runc state, shims, pod dirs and log files) and compared with
// the count taken after a warm-up: every difference is a leak. Open fds, RSS and CPU of the agent
// and the apiserver (both `skiff` child processes, as they run on a node), containerd and etcd
// are followed too (RSS target:
// < 10 % growth): read every second and judged on the low and high points of the first and last
// tenth of the timed cycles (soak-report.ts), sampled along the run with the apiserver's V8 heap
// and etcd's database size (does it plateau? is it live objects?), and explained where known
// (malloc_trim of the apiserver and the agent, etcd's raft entries). The apiserver compacts etcd every
// --compaction-interval seconds, and the final count waits for a compaction past the last cycle
// (etcd keeps every revision until then). Prints create → Running p50/p99 over the whole run.
import { create } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Node } from "../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { createResourceClient, type ResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { namespace } from "../test/fixtures/objects.ts";
import { interruptedBy, onCleanup } from "./lib/cleanup.ts";
import { startBenchControlPlane } from "./lib/control-plane.ts";
import type { Daemon } from "./lib/child.ts";
import { scrape } from "./lib/prom.ts";
import { sleep, summarize } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";
import { cpuMark, cpuSince, noisyNote } from "./lib/proc.ts";
import { startSoakNode } from "./soak-agent.ts";
import { mallocTrim } from "./soak-malloc.ts";
import { printVerdict, trackRss } from "./soak-report.ts";
import { containerdPid, MACHINE_WIDE, serverPid, takeInventory, type Inventory, type InventoryScope } from "./soak-inventory.ts";
import { ETCD_SNAPSHOT_COUNT } from "../internal/cmd/etcd-process.ts";
import { MALLOC_ARENA_MAX, memoryNodeFlags } from "../internal/cmd/node-memory.ts";
import { cpus } from "node:os";

const options = {
  cycles: { type: "string", default: "2000" },
  concurrency: { type: "string", default: "20" },
  warmup: { type: "string", default: "2000" },
  "compaction-interval": { type: "string", default: "30" },
  "sample-every": { type: "string", default: "100" },
  "pod-timeout": { type: "string", default: "60000" },
  "settle-timeout": { type: "string", default: "30000" },
  "agent-log-level": { type: "string", default: "warn" },
  "heap-snapshots": { type: "string" },
  "heap-snapshot-at": { type: "string", default: "500,1500" },
  "skiff-env": { type: "string", multiple: true },
  "node-defaults": { type: "boolean", default: false },
  "skiff-node-arg": { type: "string", multiple: true },
  "etcd-snapshot-count": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- soak [options]

  --cycles N            pod create → Running → delete → gone cycles (default 2000)
  --concurrency N       cycles in flight at once (default 20)
  --warmup N            untimed cycles before the "before" inventory (default 2000: etcd's first
                        snapshot at --snapshot-count 10000, V8's heap growth)
  --compaction-interval S  the apiserver's etcd compaction interval (default 30; its own default
                        is 300, like Kubernetes'); the final count waits for a compaction past the
                        last cycle
  --sample-every N      RSS of every process sampled every N cycles, from the start (default 100)
  --pod-timeout MS      a pod not Running (or not gone) after this fails the run (default 60000)
  --settle-timeout MS   how long the node may take to get back to its "before" counts once the
                        namespace is empty (default 30000); what differs after it is a leak
  --agent-log-level L   the agent child's --log-level (default warn; its last lines are printed if it exits)
  --heap-snapshots DIR  write V8 heap snapshots of the apiserver into DIR at the cycles of
                        --heap-snapshot-at (default 500,1500; warm-up included) and at the end
                        (compare them in Chrome DevTools' Memory tab, "Comparison" view;
                        writing one costs the apiserver RSS: figures of such a run are not clean)
  --skiff-env K=V       environment for the apiserver and agent children (repeatable), e.g. glibc
                        malloc tunables: MALLOC_ARENA_MAX=2
  --node-defaults       run the apiserver and agent with V8's and glibc's own heap sizing instead of
                        Skiff's memory settings (internal/cmd/node-memory.ts): the comparison
  --skiff-node-arg F    a flag for node in the apiserver and agent children (repeatable), e.g.
                        --skiff-node-arg=--heap-growing-percent=50: to try one before it goes into
                        node-memory.ts
  --etcd-snapshot-count N  etcd's --snapshot-count (default ${ETCD_SNAPSHOT_COUNT}, what skiff server/up give
                        etcd; etcd 3.4's own is 100000); etcd keeps that many raft entries in memory
                        before it snapshots

Needs root and what \`bench pods\` needs (containerd, runc, CNI plugins, etcd, busybox-static).`;

const NS = "bench-soak";

function int(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** Waits on pods of one namespace reaching Running / being deleted, through one Watch; keeps no history. */
function podWaiter(pods: ResourceClient<Pod>) {
  const running = new Map<string, () => void>();
  const gone = new Map<string, () => void>();
  const abort = new AbortController();
  onCleanup(() => abort.abort());
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  void (async () => {
    let rv = "";
    while (!abort.signal.aborted) {
      try {
        for await (const ev of pods.watch(NS, { resourceVersion: rv, signal: abort.signal })) {
          rv = ev.object.metadata?.resourceVersion || rv;
          if (ev.type === "BOOKMARK") {
            markReady();
            continue;
          }
          const name = ev.object.metadata!.name;
          if (ev.type === "DELETED") gone.get(name)?.();
          else if (ev.object.status?.phase === "Running") running.get(name)?.();
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (/out.of.range|too old/i.test(String(err))) rv = "";
        await sleep(100);
      }
    }
  })();
  const waitFor = (map: Map<string, () => void>, name: string, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        map.delete(name);
        reject(new Error(`pod ${NS}/${name} not ${what} after ${timeoutMs} ms`));
      }, timeoutMs);
      map.set(name, () => {
        clearTimeout(timer);
        map.delete(name);
        resolve();
      });
    });
  return {
    ready,
    // Registered before the create/delete call, so that the event cannot be missed.
    running: (name: string, ms: number) => waitFor(running, name, "Running", ms),
    gone: (name: string, ms: number) => waitFor(gone, name, "deleted", ms),
  };
}

// NaN (a listing that failed) differs from everything: it is reported, never taken for "no leak".
// Machine-wide counts are left out: other work on the machine moves them.
const differing = (a: Inventory, b: Inventory) => Object.keys(a.objects).filter((k) => !MACHINE_WIDE.has(k) && !(a.objects[k] === b.objects[k]));

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const cycles = int("cycles", v.cycles);
  const conc = int("concurrency", v.concurrency);
  const warmup = int("warmup", v.warmup, 0);
  const podTimeout = int("pod-timeout", v["pod-timeout"]);
  const settleTimeout = int("settle-timeout", v["settle-timeout"]);
  const compactionS = int("compaction-interval", v["compaction-interval"]);
  const sampleEvery = int("sample-every", v["sample-every"]);
  const snapshotDir = v["heap-snapshots"];
  const snapshotAt = new Set(v["heap-snapshot-at"].split(",").filter(Boolean).map((n) => int("heap-snapshot-at", n)));
  const skiffEnv = Object.fromEntries((v["skiff-env"] ?? []).map((kv) => {
    const at = kv.indexOf("=");
    if (at < 1) throw new Error(`--skiff-env wants NAME=VALUE, got "${kv}"`);
    return [kv.slice(0, at), kv.slice(at + 1)];
  }));
  // etcd takes every flag from ETCD_<FLAG> too, and the harness passes its environment on.
  process.env.ETCD_SNAPSHOT_COUNT = String(v["etcd-snapshot-count"] !== undefined ? int("etcd-snapshot-count", v["etcd-snapshot-count"]) : ETCD_SNAPSHOT_COUNT);
  if (process.getuid?.() !== 0) throw new Error("bench soak needs root (containerd, runc, network namespaces, iptables)");

  console.log(`Skiff soak: ${cycles} pod create/delete cycles, ${conc} at a time, ${new Date().toISOString()}`);
  // A user's flags and MALLOC_ARENA_MAX win over Skiff's (node-memory.ts); 0 is V8's own sizing,
  // 8 arenas per core glibc's default.
  const v8Args = [...(v["node-defaults"] ? ["--min-semi-space-size=0", "--max-semi-space-size=0", "--heap-growing-percent=0"] : []), ...(v["skiff-node-arg"] ?? [])];
  if (v["node-defaults"]) skiffEnv.MALLOC_ARENA_MAX ??= String(8 * cpus().length);
  const cp = await startBenchControlPlane({
    inProcess: false,
    apiserverArgs: ["--compaction-interval", String(compactionS)],
    apiserverProcess: {
      nodeArgs: [...v8Args, ...(snapshotDir ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${snapshotDir}`] : [])],
      env: skiffEnv,
    },
  });
  // Node writes the snapshot (Heap.<date>.<pid>…) synchronously on the signal: the apiserver stalls for its length.
  const heapSnapshot = () => snapshotDir && process.kill(cp.serverPid, "SIGUSR2");
  // Its RSS is one of the figures: in this process it would be mixed with the benchmark's.
  if (cp.mode !== "child process") throw new Error(`the apiserver must run as a child process here: ${cp.modeNote}`);
  const flagsNote = `${v["node-defaults"] ? "V8's and glibc's default heap sizing" : `Skiff's memory settings: apiserver ${memoryNodeFlags("apiserver").join(" ")}, agent ${memoryNodeFlags("agent").join(" ")}, MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX}`}${[...(v["skiff-node-arg"] ?? []), ...(v["skiff-env"] ?? [])].map((a) => `, ${a}`).join("")}`;
  console.log(`apiserver:  ${cp.mode} (${flagsNote}); etcd ${cp.etcdVersion}, --snapshot-count ${process.env.ETCD_SNAPSHOT_COUNT}`);
  const node = await startSoakNode({ apiUrl: cp.url, pki: cp.pki, logLevel: v["agent-log-level"], nodeArgs: v8Args, env: skiffEnv });
  const etcdPid = serverPid("etcd", cp.etcd.dataDir);
  const scope: InventoryScope = {
    networkName: node.networkName,
    cniStateDir: join(node.rootDir, "cni"),
    ctrdAddress: node.ctrd.address,
    ctrdDir: node.ctrd.dir,
    ctrdNamespace: node.ctrd.namespace,
    agentRoot: node.rootDir,
    processes: {
      agent: node.agent.pid,
      ...(cp.mode === "child process" ? { apiserver: cp.serverPid } : {}),
      ...(containerdPid(node.ctrd.dir) ? { containerd: containerdPid(node.ctrd.dir)! } : {}),
      ...(etcdPid ? { etcd: etcdPid } : {}),
    },
  };
  const transport = createApiTransport(cp.url, cp.credentials);
  await registered(createResourceClient<Node>(transport, "Node"), node.nodeName, node.agent);
  console.log(`node:       skiff agent child process (${flagsNote}), containerd namespace ${node.ctrd.namespace}, network ${node.networkName}`);

  const pods = createResourceClient<Pod>(transport, "Pod");
  await createResourceClient(transport, "Namespace").create(namespace(NS));
  const waiter = podWaiter(pods);
  await waiter.ready;
  const start = takeInventory(scope);
  // RSS along the run: [cycles done (warm-up included), KiB by process].
  const samples: [number, Record<string, number>][] = [[0, start.rssKiB]];
  // At each sample: the apiserver's and the agent's V8 heap in use, committed, its young generation
  // and off-heap (ArrayBuffer) bytes, from their /metrics (tells growth of live objects from a heap V8 merely keeps large); the Events the
  // namespace holds (nothing deletes them here unless --event-ttl); etcd's database file and
  // the part of it in use (compaction frees pages inside the file, only defrag shrinks it).
  const events = createResourceClient(transport, "Event");
  const sidecar = new Map<number, Promise<string[]>>();
  const mibOf = (bytes: number | undefined) => ((bytes ?? NaN) / 1048576).toFixed(1);
  // A process's V8 heap from its /metrics (prom-client's default metrics, whatever their prefix).
  const v8Heap = (url: string) =>
    scrape(url).then(
      (m) => {
        const get = (suffix: string) => [...m].find(([k]) => k.endsWith(suffix))?.[1];
        return [get("nodejs_heap_size_used_bytes"), get("nodejs_heap_size_total_bytes"), get('nodejs_heap_space_size_total_bytes{space="new"}'), get("nodejs_external_memory_bytes")].map(mibOf).join(" / ");
      },
      () => "?",
    );
  const sampleSidecar = (n: number) =>
    sidecar.set(n, Promise.all([
      v8Heap(`${cp.url}/metrics`),
      v8Heap(node.metricsUrl),
      events.list(NS).then((l) => String(l.items.length), () => "?"),
      scrape(cp.etcd.metricsUrl).then(
        (m) => ["etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes"].map((k) => mibOf(m.get(k))).join(" / "),
        () => "?",
      ),
    ]));
  sampleSidecar(0);
  let cyclesDone = 0;
  const countCycle = () => {
    if (snapshotAt.has(++cyclesDone)) heapSnapshot();
    if (cyclesDone % sampleEvery !== 0) return;
    samples.push([cyclesDone, takeInventory(scope).rssKiB]);
    sampleSidecar(cyclesDone);
  };

  const podSpec = (name: string): Pod =>
    create(PodSchema, {
      metadata: { name, namespace: NS },
      spec: { nodeName: node.nodeName, containers: [{ name: "app", image: node.image.ref, imagePullPolicy: "Never", command: ["sleep", "3600"] }] },
    });
  /** One cycle; returns create → Running in ms. Grace 1 s: sleep as PID 1 ignores SIGTERM. */
  const cycle = async (name: string): Promise<number> => {
    if (interruptedBy()) throw new Error("interrupted");
    const isRunning = waiter.running(name, podTimeout);
    const t0 = performance.now();
    await pods.create(podSpec(name));
    await isRunning;
    const startMs = performance.now() - t0;
    const isGone = waiter.gone(name, podTimeout);
    await pods.delete(NS, name, { gracePeriodSeconds: 1n });
    await isGone;
    return startMs;
  };
  const churn = async (prefix: string, n: number, onDone?: (done: number) => void): Promise<number[]> => {
    const out: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(n, conc) }, async () => {
        while (next < n) {
          const i = next++;
          out.push(await cycle(`${prefix}-${i}`));
          countCycle();
          onDone?.(out.length);
        }
      }),
    );
    return out;
  };
  /** Polls the inventory until it matches `want` (or the timeout): teardown may lag the DELETED event by a little. */
  // Without `want`: until no shim outlives its task (a shim exits a moment after its task is deleted).
  const settle = async (want?: Inventory): Promise<{ inv: Inventory; ms: number }> => {
    const t0 = performance.now();
    for (;;) {
      const inv = takeInventory(scope);
      const done = want ? differing(inv, want).length === 0 : inv.objects["shim processes"] <= inv.objects["containerd tasks"];
      if (done || performance.now() - t0 > settleTimeout) return { inv, ms: performance.now() - t0 };
      await sleep(500);
    }
  };

  /** A line every 10 s: cycles done, their rate, RSS by process. */
  const progress = (n: number) => {
    const from = performance.now();
    let last = from;
    return (done: number) => {
      if (performance.now() - last < 10_000) return;
      last = performance.now();
      const mib = Object.entries(takeInventory(scope).rssKiB).map(([p, kib]) => `${p} ${(kib / 1024).toFixed(0)}`).join(", ");
      console.log(`            ${done}/${n} cycles, ${((done * 1000) / (last - from)).toFixed(1)}/s; RSS MiB: ${mib}`);
    };
  };
  if (warmup > 0) {
    console.log(`warm-up:    ${warmup} cycles`);
    await churn("warmup", warmup, progress(warmup));
  }
  // A full wave running, counted: shows that every counter sees what a pod makes.
  process.stdout.write(`loaded:     ${conc} pods Running, counting… `);
  const wave = Array.from({ length: conc }, (_, i) => `wave-${i}`);
  await Promise.all(wave.map(async (name) => {
    const isRunning = waiter.running(name, podTimeout);
    await pods.create(podSpec(name));
    await isRunning;
  }));
  const loaded = takeInventory(scope);
  await Promise.all(wave.map(async (name) => {
    const isGone = waiter.gone(name, podTimeout);
    await pods.delete(NS, name, { gracePeriodSeconds: 1n });
    await isGone;
  }));
  console.log("done");
  const { inv: before } = await settle();
  const etcdBefore = await scrape(cp.etcd.metricsUrl).catch(() => undefined);
  const t0 = performance.now();
  // RSS every second: a GC-managed heap swings between collections, so the timed run is judged
  // on the low and high points of its first and last tenth, not on two single readings.
  const rssTrack = trackRss(scope.processes, () => cyclesDone - warmup);
  const cpuGroups = Object.fromEntries(Object.entries(scope.processes).map(([name, pid]) => [name, (p: { pid: number }) => p.pid === pid]));
  const cpuAtStart = cpuMark(cpuGroups);
  const startMs = await churn("soak", cycles, progress(cycles));
  const wallS = (performance.now() - t0) / 1000;
  const cpu = cpuSince(cpuGroups, cpuAtStart);
  const rssWindows = rssTrack.stop(cycles);
  const lastRevision = Number((await pods.list(NS)).resourceVersion);
  const compacted = await compactedPast(cp.etcd.metricsUrl, lastRevision, 3 * compactionS * 1000);
  const { inv: after, ms: settledMs } = await settle(before);
  console.log(`churn:      ${cycles} cycles in ${wallS.toFixed(1)} s (${(cycles / wallS).toFixed(1)} cycles/s); node settled ${(settledMs / 1000).toFixed(1)} s after the last deletion`);
  console.log(`etcd:       ${compacted === undefined ? `NOT compacted past the last cycle's revision ${lastRevision} within ${3 * compactionS} s` : `compacted to revision ${compacted} (last cycle: ${lastRevision}) before the final count`}`);

  const s = summarize(startMs);
  console.log(`\npod create → Running (ms, ${s.count} pods): p50 ${fmtMs(s.p50)}  p99 ${fmtMs(s.p99)}  max ${fmtMs(s.max)}`);
  // The agent's figure includes the programs it ran and reaped (CNI plugins, mount, …).
  console.log(`CPU over the timed cycles, ms per cycle: ${[...Object.keys(scope.processes), "other"].map((p) => `${p} ${((cpu.seconds[p] * 1000) / cycles).toFixed(1)}`).join(" · ")} ("other": the rest of the machine, ${Math.round(cpu.pct.other)} % of a core on average)`);
  const busy = noisyNote(cpu.pct.other);
  if (busy) console.log(busy);
  console.log("");
  const leaks = differing(before, after).filter((k) => !(after.objects[k] <= before.objects[k]));
  const objectRows = Object.keys(before.objects).map((k) => [k, loaded.objects[k], before.objects[k], after.objects[k], MACHINE_WIDE.has(k) ? "(machine-wide: not counted)" : after.objects[k] - before.objects[k]]);
  console.log(renderTable(["node object", `with ${conc} pods`, "before", "after", "leaked"], objectRows));
  console.log("");
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const growth = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(1)} %`;
  const rssRows = Object.keys(scope.processes).map((p) => [
    p, before.fds[p], after.fds[p], mib(start.rssKiB[p]), mib(before.rssKiB[p]), mib(after.rssKiB[p]),
    growth(start.rssKiB[p], after.rssKiB[p]), growth(before.rssKiB[p], after.rssKiB[p]),
  ]);
  console.log(renderTable(["process", "fds before", "fds after", "RSS MiB start", `after ${warmup} warm-up`, "end", "growth from start", "growth after warm-up"], rssRows));
  console.log(`\nRSS MiB along the run (every ${sampleEvery} cycles, warm-up included; the end row is after the settle):`);
  samples.push([cyclesDone, after.rssKiB]);
  sampleSidecar(-1);
  if (snapshotDir) await lastHeapSnapshot(snapshotDir, cp.serverPid);
  const sidecarCols = await Promise.all(samples.map(([n], i) => sidecar.get(i === samples.length - 1 ? -1 : n) ?? ["?", "?", "?", "?"]));
  console.log(renderTable(
    ["cycles", ...Object.keys(scope.processes), "apiserver V8 heap used / total / young, external MiB", "agent V8 heap (same)", "Events", "etcd db / in use MiB"],
    samples.map(([n, rss], i) => [i === samples.length - 1 ? `${n} end` : n, ...Object.keys(scope.processes).map((p) => mib(rss[p])), ...sidecarCols[i]]),
  ));
  const etcdAfter = await scrape(cp.etcd.metricsUrl).catch(() => undefined);
  // Taken last: it gives memory back, which changes what it measures.
  const trim = { apiserver: mallocTrim(cp.serverPid), agent: mallocTrim(node.agent.pid) };
  printVerdict({ scope, before, after, leaks, warmup, cycles, trim, etcdBefore, etcdAfter, rssWindows });
}

/** Waits until the agent child has registered its Node (loading and starting it can take 30 s on a loaded machine). */
async function registered(nodes: ResourceClient<Node>, name: string, agent: Daemon): Promise<void> {
  const until = performance.now() + 180_000;
  for (;;) {
    if (agent.exited()) throw new Error(`skiff agent exited before registering its Node:\n${agent.output()}`);
    if (await nodes.get("", name).then(() => true, () => false)) return;
    if (performance.now() > until) throw new Error(`skiff agent did not register Node ${name} within 180 s:\n${agent.output()}`);
    await sleep(500);
  }
}

/** Takes the end snapshot and waits until it is written (the apiserver is stopped right after). */
async function lastHeapSnapshot(dir: string, pid: number): Promise<void> {
  const snapshots = () => readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot"));
  const had = snapshots().length;
  process.kill(pid, "SIGUSR2");
  // Node writes it under its final name: done once a new one is there and no longer grows.
  let size = -1;
  for (let i = 0; i < 600; i++) {
    await sleep(1000);
    const fresh = snapshots().sort().at(-1);
    if (snapshots().length <= had || !fresh) continue;
    const now = statSync(join(dir, fresh)).size;
    if (now === size) return;
    size = now;
  }
}

/**
 * Waits until etcd's compaction revision passes `revision` (its etcd_debugging_mvcc_compact_revision
 * gauge); returns it, or undefined when none came within timeoutMs.
 */
async function compactedPast(metricsUrl: string, revision: number, timeoutMs: number): Promise<number | undefined> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const rev = (await scrape(metricsUrl).catch(() => undefined))?.get("etcd_debugging_mvcc_compact_revision");
    if (rev !== undefined && rev >= revision) return rev;
    if (performance.now() > until) return undefined;
    await sleep(1000);
  }
}
