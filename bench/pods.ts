// `npm run bench -- pods`: how long a pod takes from the create call to Running on one real node,
// next to the bare runtime doing the same container start.
//
//   pods   Create of a pod bound to the node (spec.nodeName set: no scheduler) running the
//          busybox-static image's httpd (or `sleep 3600`), until a Watch shows status.phase
//          Running. The agent runs in this process (pods-node.ts) with its default timings; the
//          apiserver is a child process on the harness's etcd; containerd + runc + CNI are real.
//   ctr    `ctr run -d IMAGE ID sleep 3600` on the same containerd, same image (pods-ctr.ts).
//
// Both run one at a time by default, interleaved in rounds (order rotated), after an untimed
// warm-up of each. Verdict: pod p99 ≤ 1.5 × ctr p99 + 100 ms. Then "where the time went": each
// pod's path split at the calls the agent makes (pods-trace.ts), the containerd RPCs of a pod,
// and CPU per process group. Everything is removed at the end and on Ctrl-C: pods deleted
// through the API (the agent tears them down), then whatever is left on the node.
import { create } from "@bufbuild/protobuf";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { performance } from "node:perf_hooks";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { namespace } from "../test/fixtures/objects.ts";
import { interruptedBy, onCleanup } from "./lib/cleanup.ts";
import { startBenchControlPlane } from "./lib/control-plane.ts";
import { watchPods, type PodSighting } from "./lib/pod-watch.ts";
import { profileThisProcess } from "./lib/cpuprofile.ts";
import { addCpu, cpuMark, cpuSince, type CpuSample, type Groups } from "./lib/proc.ts";
import { sleep } from "./lib/stats.ts";
import { createCtrRunner } from "./pods-ctr.ts";
import { startBenchNode } from "./pods-node.ts";
import { printPodsReport, type PodRun } from "./pods-report.ts";

const options = {
  pods: { type: "string", default: "30" },
  ctr: { type: "string", default: "30" },
  concurrency: { type: "string", default: "1" },
  rounds: { type: "string", default: "5" },
  warmup: { type: "string", default: "2" },
  command: { type: "string", default: "httpd" },
  "pod-timeout": { type: "string", default: "60000" },
  "agent-log-level": { type: "string", default: "silent" },
  resync: { type: "string" },
  "in-process": { type: "boolean", default: false },
  "cpu-prof": { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- pods [options]

  --pods N              timed pods (default 30)
  --ctr N               timed ctr run -d containers (default 30)
  --concurrency N       pods (and ctr runs) in flight at once (default 1: one after the other)
  --rounds N            blocks the pods and ctr runs are interleaved in (default 5)
  --warmup N            untimed pods and ctr runs first (default 2 each)
  --command C           what the pods run: httpd (the image's httpd -f) or sleep (sleep 3600)
  --pod-timeout MS      a pod not Running after this fails the run (default 60000)
  --agent-log-level L   the in-process agent's log level, to stderr (default silent)
  --resync MS           the agent's resync period (default: the agent's own, 10 s)
  --in-process          run the apiserver in this process instead of as a child
  --cpu-prof DIR        V8 CPU profiles into DIR: of this process (the agent) over the timed
                        phase, its top functions printed; of the apiserver child when it exits

Needs root (containerd, runc, network namespaces, iptables), Debian's containerd, runc, ctr,
containernetworking-plugins, etcd-server and busybox-static.`;

const NS = "bench-pods";

function int(name: string, value: string, min = 1): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** op(0) … op(n-1), `concurrency` at a time; resolves with each op's result. */
async function inParallel<T>(n: number, concurrency: number, op: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await op(i);
      }
    }),
  );
  return out;
}

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const nPods = int("pods", v.pods);
  const nCtr = int("ctr", v.ctr);
  const conc = int("concurrency", v.concurrency);
  const rounds = Math.min(nPods, nCtr, int("rounds", v.rounds));
  const warmup = int("warmup", v.warmup, 0);
  const podTimeout = int("pod-timeout", v["pod-timeout"]);
  if (v.command !== "httpd" && v.command !== "sleep") throw new Error(`--command must be httpd or sleep, got "${v.command}"`);
  if (process.getuid?.() !== 0) throw new Error("bench pods needs root (containerd, runc, network namespaces, iptables)");

  const cpu = cpus();
  console.log(`Skiff pod startup benchmark, ${new Date().toISOString()}`);
  console.log(`machine:    ${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ${osType()} ${release()}`);
  console.log(`            load average at start ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`node:       ${process.version}`);
  const cp = await startBenchControlPlane({ inProcess: v["in-process"], cpuProfDir: v["cpu-prof"] });
  console.log(`etcd:       ${cp.etcdVersion} (single member, temp dir, loopback)`);
  console.log(`apiserver:  ${cp.mode}: ${cp.modeNote}`);
  process.stdout.write("node:       starting containerd, importing the image, starting the agent… ");
  const resyncMs = v.resync === undefined ? undefined : int("resync", v.resync);
  const node = await startBenchNode({ apiUrl: cp.url, pki: cp.pki, logLevel: v["agent-log-level"], resyncMs });
  const ctr = await createCtrRunner({ address: node.ctrd.address, namespace: `${node.ctrd.namespace}-ctr`, imageRef: node.image.ref, imageTar: node.image.tarPath });
  console.log("done");
  console.log(
    `            agent in this process (${resyncMs === undefined ? "default timings: resync 10 s" : `resync ${resyncMs} ms`}, heartbeat 10 s), containerd namespace ${node.ctrd.namespace}`,
  );
  console.log(`            CNI bridge ${node.networkName} (bridge + host-local + portmap), pod CIDR ${node.podCidr}, netns per pod`);
  console.log(`            image ${node.image.ref} (busybox-static, imported; pull policy Never); pods run ${v.command === "httpd" ? "httpd -f (the image's command)" : "sleep 3600"}`);
  console.log(`ctr:        ${ctr.commandLine("<id>")}`);

  const transport = createApiTransport(cp.url, cp.credentials);
  const pods = createResourceClient<Pod>(transport, "Pod");
  await createResourceClient(transport, "Namespace").create(namespace(NS));
  const watch = watchPods(pods, NS);
  await watch.ready;

  // Pods go through the API on the way out, so that the agent tears each down as it would in
  // production (stop, remove, CNI DEL, netns) before it confirms the deletion; what it cannot
  // finish in time, pods-node.ts removes. Grace 1 s, not 0: a grace-0 delete removes the object at
  // once, and the agent then stops the containers with the pod's own 30 s grace (httpd and sleep
  // run as PID 1 and ignore SIGTERM), long after the object is gone.
  const deleteAll = async (timeoutMs: number): Promise<{ count: number; ms: number }> => {
    const t0 = performance.now();
    const { items } = await pods.list(NS);
    await inParallel(items.length, 8, (i) => pods.delete(NS, items[i].metadata!.name, { gracePeriodSeconds: 1n }).catch(() => undefined));
    while (performance.now() - t0 < timeoutMs) {
      if ((await pods.list(NS)).items.length === 0) return { count: items.length, ms: performance.now() - t0 };
      await sleep(100);
    }
    throw new Error(`${(await pods.list(NS)).items.length} of ${items.length} pods still there after ${timeoutMs} ms`);
  };
  let deleted = false;
  onCleanup(async () => {
    if (!deleted) await deleteAll(5_000);
  });

  const podSpec = (name: string): Pod =>
    create(PodSchema, {
      metadata: { name, namespace: NS },
      spec: {
        nodeName: node.nodeName,
        containers: [{ name: "app", image: node.image.ref, imagePullPolicy: "Never", command: v.command === "sleep" ? ["sleep", "3600"] : [] }],
      },
    });
  const startPod = async (name: string): Promise<PodRun> => {
    if (interruptedBy()) throw new Error("interrupted"); // Ctrl-C: create nothing more while cleaning up
    const t0 = performance.now();
    const created = await pods.create(podSpec(name));
    const t1 = performance.now();
    const seen: PodSighting = await watch.running(name, podTimeout);
    return { name, uid: created.metadata!.uid, t0, t1, added: seen.added, running: seen.running! };
  };

  const groups: Groups = {
    "bench+agent": (p) => p.pid === process.pid,
    apiserver: (p) => p.pid === cp.serverPid && cp.mode === "child process",
    etcd: (p) => p.cmdline.includes(cp.etcd.dataDir),
    containerd: (p) => p.cmdline.includes(node.ctrd.dir),
  };

  process.stdout.write(`warm-up: ${warmup} pods, ${warmup} ctr runs… `);
  for (let i = 0; i < warmup; i++) {
    await startPod(`warmup-${i}`);
    await ctr.run(`warmup-${i}`);
  }
  console.log("done");

  const podRuns: PodRun[] = [];
  const ctrMs: number[] = [];
  let podCpu: CpuSample | undefined;
  let ctrCpu: CpuSample | undefined;
  let podWallMs = 0;
  let ctrWallMs = 0;
  let maxOther = 0;
  const profDir = v["cpu-prof"];
  if (profDir) mkdirSync(profDir, { recursive: true });
  const profiler = profDir ? await profileThisProcess() : undefined;
  process.stdout.write(`timed: ${nPods} pods and ${nCtr} ctr runs, ${conc} at a time, interleaved in ${rounds} rounds… `);
  const blocks: [string, (r: number) => Promise<void>][] = [
    [
      "pods",
      async (r) => {
        const first = Math.floor((r * nPods) / rounds);
        const count = Math.floor(((r + 1) * nPods) / rounds) - first;
        const mark = cpuMark(groups);
        const t = performance.now();
        podRuns.push(...(await inParallel(count, conc, (i) => startPod(`pod-${first + i}`))));
        podWallMs += performance.now() - t;
        const s = cpuSince(groups, mark);
        maxOther = Math.max(maxOther, s.pct.other);
        podCpu = addCpu(podCpu, s);
      },
    ],
    [
      "ctr",
      async (r) => {
        const first = Math.floor((r * nCtr) / rounds);
        const count = Math.floor(((r + 1) * nCtr) / rounds) - first;
        const mark = cpuMark(groups);
        const t = performance.now();
        ctrMs.push(...(await inParallel(count, conc, (i) => ctr.run(`bench-ctr-${first + i}`))));
        ctrWallMs += performance.now() - t;
        const s = cpuSince(groups, mark);
        maxOther = Math.max(maxOther, s.pct.other);
        ctrCpu = addCpu(ctrCpu, s);
      },
    ],
  ];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < blocks.length; k++) await blocks[(r + k) % blocks.length][1](r);
  }
  const agentProfile = profDir ? join(profDir, `agent-${process.pid}.cpuprofile`) : undefined;
  if (profiler && agentProfile) await profiler.stop(agentProfile);
  console.log("done");

  process.stdout.write("cleaning up: deleting the pods through the API, removing the ctr containers… ");
  const del = await deleteAll(120_000);
  deleted = true;
  const ctrRemoved = await ctr.removeAll();
  console.log("done");

  printPodsReport({
    command: v.command,
    concurrency: conc,
    rounds,
    pods: podRuns,
    ctrMs,
    podWallMs,
    ctrWallMs,
    podCpu: podCpu!,
    ctrCpu: ctrCpu!,
    groupOrder: Object.keys(groups),
    tracer: node.tracer,
    deleted: del,
    ctrRemoved,
    maxOtherPct: maxOther,
    agentProfile,
  });
}
