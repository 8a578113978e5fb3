// `npm run bench -- proxy`: what the service proxy (internal/network/proxy) costs and how fast it
// follows changes.
//
//   traffic  HTTP GETs from this host to a backend in a pod network namespace (CNI bridge), straight
//            to the pod IP and through a ClusterIP (nftables DNAT), interleaved in rounds, with
//            keep-alive connections and with a new connection per request (where DNAT runs on
//            every request: NAT rules are only consulted for a connection's first packet).
//   resync   1,000 Services with Endpoints; then one Endpoints object at a time is changed (a
//            backend replaced) and the time from the update call to the proxy having written the
//            rules with the new backend (its `nft -f` returned) is measured.
//
// The proxy runs in this process (createServiceProxy, default timings) against an apiserver
// child on the harness's etcd, with a table of its own; everything is removed at the end and on
// Ctrl-C (network namespaces, bridge, NAT rules, the table).
import { create } from "@bufbuild/protobuf";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import pino from "pino";
import { EndpointsSchema, type Endpoints } from "../gen/skiff/v1alpha1/endpoints_pb.js";
import { PodSchema } from "../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, type Service } from "../gen/skiff/v1alpha1/service_pb.js";
import { createCniNetwork } from "../internal/agent/network.ts";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { parseCidr, formatIPv4 } from "../internal/network/conflist.ts";
import { createServiceProxy, type ProxyModel } from "../internal/network/proxy/index.ts";
import { makeTempDir, removeTempDir } from "../test/harness/tmp.ts";
import { freePodCidr, removeRun, runName, sweepCrashedRuns } from "../test/network/leftovers.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { startBenchControlPlane } from "./lib/control-plane.ts";
import { cpuMark, cpuSince, noisyNote, type Groups } from "./lib/proc.ts";
import { summarize, type Summary } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";

const options = {
  seconds: { type: "string", default: "3" },
  rounds: { type: "string", default: "4" },
  connections: { type: "string", default: "16" },
  services: { type: "string", default: "1000" },
  changes: { type: "string", default: "100" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- proxy [options]

  --seconds N       length of one traffic phase (default 3)
  --rounds N        rounds of (pod IP, ClusterIP) phases per connection mode (default 4)
  --connections N   concurrent requests (keep-alive: connections) (default 16)
  --services N      Services (each with 2 backends) for the resync part (default 1000)
  --changes N       Endpoints changes timed one after the other (default 100)

Needs root (network namespaces, CNI, nft), Debian's containernetworking-plugins, nftables and
etcd-server.`;

function int(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be an integer ≥ 1, got "${value}"`);
  return n;
}

const NS = "bench-proxy";
const preload = new URL("./lib/exit-with-parent.ts", import.meta.url).href;

interface Phase {
  target: "pod IP" | "ClusterIP";
  keepAlive: boolean;
  requests: number;
  errors: number;
  wallMs: number;
  latencies: number[];
}

/** Closed loop: `connections` requests in flight for `seconds`. */
async function load(url: string, keepAlive: boolean, connections: number, seconds: number): Promise<Omit<Phase, "target">> {
  const agent = new http.Agent({ keepAlive, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on("end", () => {
          latencies.push(performance.now() - t0);
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const wallMs = performance.now() - start;
  agent.destroy();
  return { keepAlive, requests: latencies.length, errors, wallMs, latencies };
}

function service(name: string, clusterIp: string): Service {
  return create(ServiceSchema, { metadata: { name, namespace: NS }, spec: { clusterIp, ports: [{ name: "http", port: 80, targetPort: "8080" }] } });
}

function endpoints(name: string, ips: string[]): Endpoints {
  return create(EndpointsSchema, { metadata: { name, namespace: NS }, subsets: [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: "http", port: 8080 }] }] });
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const seconds = int("seconds", values.seconds);
  const rounds = int("rounds", values.rounds);
  const connections = int("connections", values.connections);
  const nServices = int("services", values.services);
  const nChanges = int("changes", values.changes);
  if (nServices > 60_000) throw new Error("--services must be at most 60000");
  // Ours: this process (client, proxy, the nft it runs), the backend and the apiserver.
  const ours = new Set<number>([process.pid]);
  const groups: Groups = { bench: (p) => ours.has(p.pid) };
  const mark = cpuMark(groups);

  // Node: a CNI bridge network with one pod network namespace running the HTTP server.
  await sweepCrashedRuns();
  const name = runName();
  const podCidr = await freePodCidr();
  const dir = makeTempDir("skiff-bench-proxy-");
  onCleanup(() => removeTempDir(dir));
  onCleanup(() => removeRun(name));
  const network = createCniNetwork({ confDir: join(dir, "net.d"), stateDir: join(dir, "cni"), network: { name, bridge: name, podCidr } });
  const uid = randomUUID();
  const pod = create(PodSchema, { metadata: { name: "backend", namespace: NS, uid } });
  const { ip: podIP } = await network.setUp(pod);
  onCleanup(() => network.tearDown(uid));
  const server = spawn("ip", ["netns", "exec", `${name}-${uid}`, process.execPath, "--import", preload, join(import.meta.dirname, "proxy-server.ts"), "8080"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  onCleanup(() => server.kill("SIGKILL"));
  ours.add(server.pid!);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve());
    server.once("exit", (code) => reject(new Error(`backend server exited ${code}`)));
  });

  // Its Service addresses are asked for explicitly from 10.234.0.0/16: the apiserver allocates from there.
  const cp = await startBenchControlPlane({ inProcess: false, serviceCidr: "10.234.0.0/16" });
  ours.add(cp.serverPid);
  const transport = createApiTransport(cp.url, cp.credentials);
  const svcs = createResourceClient<Service>(transport, "Service");
  const eps = createResourceClient<Endpoints>(transport, "Endpoints");
  await createResourceClient(transport, "Namespace").create({ metadata: { name: NS } } as any).catch(() => undefined);

  let applied: ((m: ProxyModel) => void) | undefined;
  const syncMs: number[] = [];
  let rules = 0;
  const proxy = createServiceProxy({
    transport,
    log: pino({ level: "warn" }),
    table: name,
    podCidr,
    onApplied: (info) => {
      syncMs.push(info.durationMs);
      rules = info.rules;
      applied?.(info.model);
    },
  });
  onCleanup(() => proxy.stop());
  /** Resolves once the proxy wrote rules whose model satisfies `pred`. */
  const until = (pred: (m: ProxyModel) => boolean) =>
    new Promise<void>((resolve) => {
      applied = (m) => {
        if (pred(m)) {
          applied = undefined;
          resolve();
        }
      };
    });

  // Service addresses: a /16 no route touches (10.234.0.0/16); the first is the traffic one.
  const vip = (i: number) => `10.234.${i >> 8}.${i & 255}`;
  await svcs.create(service("web", vip(1)));
  await eps.create(endpoints("web", [podIP]));
  proxy.start();
  await proxy.waitForFirstSync();
  await until((m) => m.ports.some((p) => p.name === "web" && p.backends.length === 1)).catch(() => undefined);

  // 1. Traffic.
  const phases: Phase[] = [];
  for (const keepAlive of [true, false]) {
    await load(`http://${podIP}:8080/`, keepAlive, connections, 1); // warm-up
    await load(`http://${vip(1)}/`, keepAlive, connections, 1);
    for (let r = 0; r < rounds; r++) {
      const order: Phase["target"][] = r % 2 === 0 ? ["pod IP", "ClusterIP"] : ["ClusterIP", "pod IP"];
      for (const target of order) {
        const url = target === "pod IP" ? `http://${podIP}:8080/` : `http://${vip(1)}/`;
        phases.push({ target, ...(await load(url, keepAlive, connections, seconds)) });
      }
    }
  }

  // 2. 1,000 Services, then Endpoints changes one at a time.
  const cidr = parseCidr(podCidr);
  const fakeIP = (n: number) => formatIPv4(cidr.first + 1 + (n % (cidr.last - cidr.first - 1)));
  const t0 = performance.now();
  const queue = Array.from({ length: nServices }, (_, i) => i + 2);
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        await svcs.create(service(`s${i}`, vip(i)));
        await eps.create(endpoints(`s${i}`, [fakeIP(2 * i), fakeIP(2 * i + 1)]));
      }
    }),
  );
  await until((m) => m.ports.filter((p) => p.backends.length === 2).length >= nServices);
  const fillMs = performance.now() - t0;
  const fullSyncs = syncMs.length;

  const delays: number[] = [];
  for (let c = 0; c < nChanges; c++) {
    const i = 2 + ((c * 7919) % nServices);
    const cur = await eps.get(NS, `s${i}`);
    const fresh = fakeIP(nServices * 2 + c);
    cur.subsets[0].addresses[0].ip = fresh;
    const seen = until((m) => m.ports.some((p) => p.name === `s${i}` && p.backends.some((b) => b.ip === fresh)));
    const start = performance.now();
    await eps.update(cur);
    await seen;
    delays.push(performance.now() - start);
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 250));
  }
  const changeSyncs = syncMs.slice(fullSyncs);

  // Report.
  const cpu = cpuSince(groups, mark);
  console.log(`\nservice proxy: nftables table ${name}, backend ${podIP}:8080 (Node http server in a pod netns), ClusterIP ${vip(1)}:80`);
  console.log(`client: this process, ${connections} concurrent requests, ${rounds} rounds × ${seconds} s per target and mode\n`);
  const rows: (string | number)[][] = [];
  const verdicts: string[] = [];
  for (const keepAlive of [true, false]) {
    const by = (t: Phase["target"]) => phases.filter((p) => p.keepAlive === keepAlive && p.target === t);
    const rate = (ps: Phase[]) => ps.reduce((s, p) => s + p.requests, 0) / (ps.reduce((s, p) => s + p.wallMs, 0) / 1000);
    const stats: Record<string, { rps: number; s: Summary; errors: number }> = {};
    for (const t of ["pod IP", "ClusterIP"] as const) {
      const ps = by(t);
      stats[t] = { rps: rate(ps), s: summarize(ps.flatMap((p) => p.latencies)), errors: ps.reduce((s, p) => s + p.errors, 0) };
      rows.push([keepAlive ? "keep-alive" : "new connection each", t, stats[t].rps.toFixed(0), fmtMs(stats[t].s.p50), fmtMs(stats[t].s.p99), stats[t].errors]);
    }
    const loss = (1 - stats.ClusterIP.rps / stats["pod IP"].rps) * 100;
    verdicts.push(`${keepAlive ? "keep-alive" : "new connection each"}: ClusterIP throughput ${loss >= 0 ? `${loss.toFixed(1)} % lower` : `${(-loss).toFixed(1)} % higher`} than the pod IP — target ≤ 10 % loss: ${loss <= 10 ? "MET" : "NOT MET"}`);
  }
  console.log(renderTable(["connections", "target", "req/s", "p50 ms", "p99 ms", "errors"], rows));
  console.log("");
  for (const v of verdicts) console.log(v);

  const d = summarize(delays);
  const s = summarize(changeSyncs);
  console.log(`\n${nServices + 1} Services (${rules} rules and map elements), filled in ${(fillMs / 1000).toFixed(1)} s`);
  console.log(renderTable(
    ["", "count", "p50 ms", "p99 ms", "max ms"],
    [
      ["Endpoints update → rules written", d.count, fmtMs(d.p50), fmtMs(d.p99), fmtMs(d.max)],
      ["  of which one sync (model + text + nft -f)", s.count, fmtMs(s.p50), fmtMs(s.p99), fmtMs(s.max)],
    ],
  ));
  console.log(`\nEndpoints change → rules in place, p99 ${fmtMs(d.p99)} ms — target ≤ 1000 ms: ${d.p99 <= 1000 ? "MET" : "NOT MET"}`);
  const note = noisyNote(cpu.pct.other);
  if (note) console.log(`\n${note}`);
  await proxy.stop();
}
