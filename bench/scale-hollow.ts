// Hollow nodes for `bench scale`, run as a child process of the benchmark:
//   node --import ./lib/exit-with-parent.ts bench/scale-hollow.ts <apiserver URL> <nodes> <root dir>
//        <heartbeat ms> <resync ms> <connections> <image>
// N complete node agents (internal/agent/agent.ts, the code a real node runs) in this one process,
// each with the fake runtime (containers are records: no processes) and createHostNetwork
// (addresses from its own /24, no namespaces): they register, renew their Lease, watch their
// pods, "start" them and write their status like real agents. Like kubemark's hollow kubelets.
// Each has its own TLS connection and identity. The root dir is in memory (bench/scale.ts puts it
// under /dev/shm). Starts are spread over one heartbeat period, so that heartbeats are too.
//
// IPC with the benchmark: → {type:"ready", nodes, ms} once every agent started; ← {type:"mark"}
// starts a measurement; ← {type:"stats"} → {type:"stats", …} what happened since the mark.
import type { Transport } from "@connectrpc/connect";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import pino from "pino";
import { createAgent, type Agent } from "../internal/agent/agent.ts";
import { createHostNetwork } from "../internal/agent/network.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { createFakeRuntime } from "../internal/runtime/fake/fake.ts";
import { readFileSync } from "node:fs";
import { issueCert } from "../internal/pki/certs.ts";

export interface HollowStats {
  type: "stats";
  /** API calls of all agents since the mark, by "Service.Method". */
  calls: Record<string, { count: number; errors: number; totalMs: number; maxMs: number }>;
  /** Event-loop delay of this process since the mark (ms). */
  loop: { meanMs: number; p99Ms: number; maxMs: number };
  cpuS: number;
  wallS: number;
  rssMiB: number;
}

export type HollowMessage = { type: "ready"; nodes: number; ms: number } | { type: "error"; message: string } | HollowStats;

const [url, nodesArg, rootDir, heartbeatArg, resyncArg, , image, pkiDir] = process.argv.slice(2);
const nodes = Number(nodesArg);
const heartbeatMs = Number(heartbeatArg);
const resyncMs = Number(resyncArg);

let calls: HollowStats["calls"] = {};
function counted(inner: Transport): Transport {
  const note = (key: string, t0: number, ok: boolean) => {
    const ms = performance.now() - t0;
    const c = (calls[key] ??= { count: 0, errors: 0, totalMs: 0, maxMs: 0 });
    c.count++;
    if (!ok) c.errors++;
    c.totalMs += ms;
    c.maxMs = Math.max(c.maxMs, ms);
  };
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const t0 = performance.now();
      const key = `${method.parent.name}.${method.name}`;
      try {
        const res = await inner.unary(method, signal, timeoutMs, header, input, contextValues);
        note(key, t0, true);
        return res;
      } catch (err) {
        note(key, t0, false);
        throw err;
      }
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) => inner.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

const send = (m: HollowMessage) => process.send?.(m);
const log = pino({ level: "warn" }, pino.destination(2));
// Each hollow node is its own identity (system:node:<name>, a certificate from the run's CA), so
// each has its own TLS connection, as separate machines would.
const ca = { cert: readFileSync(join(pkiDir, "ca.crt"), "utf8"), key: readFileSync(join(pkiDir, "ca.key"), "utf8") };
async function nodeTransport(name: string): Promise<Transport> {
  const pair = await issueCert(ca, { commonName: `system:node:${name}`, organizations: ["system:nodes"], usage: "client" });
  return counted(createApiTransport(url, { ca: ca.cert, ...pair }));
}
const agents: Agent[] = [];
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let markAt = performance.now();
let markCpu = process.cpuUsage();

process.on("message", (m: { type: string }) => {
  if (m.type === "mark") {
    calls = {};
    loop.reset();
    markAt = performance.now();
    markCpu = process.cpuUsage();
  } else if (m.type === "stats") {
    const cpu = process.cpuUsage(markCpu);
    send({
      type: "stats",
      calls,
      loop: { meanMs: loop.mean / 1e6, p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 },
      cpuS: (cpu.user + cpu.system) / 1e6,
      wallS: (performance.now() - markAt) / 1000,
      rssMiB: process.memoryUsage().rss / 2 ** 20,
    });
  }
});

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) return;
  stopping = true;
  // Containers are records in memory and the root dir belongs to the benchmark: stopping the
  // agents (timers, watches) is all there is to do.
  const done = Promise.allSettled(agents.map((a) => a.stop()));
  void Promise.race([done, new Promise((r) => setTimeout(r, 5000))]).then(() => process.exit(0));
});

// Nothing reads logs here: one loopback serving certificate from the cluster CA for every hollow agent's port.
const agentTls = { ...(await issueCert(ca, { commonName: "skiff-hollow-agent", sans: ["127.0.0.1", "::1", "localhost"], usage: "server" })), clientCa: ca.cert };

try {
  const t0 = performance.now();
  const started: Promise<void>[] = [];
  for (let i = 0; i < nodes && !stopping; i++) {
    const name = `hollow-${String(i).padStart(4, "0")}`;
    const podCidr = `10.${64 + (i >> 8)}.${i & 255}.0/24`;
    const agent = createAgent({
      transport: await nodeTransport(name),
      nodeName: name,
      runtime: createFakeRuntime({ images: [image] }),
      network: createHostNetwork({ podCidr }),
      rootDir: join(rootDir, name),
      log,
      heartbeatMs,
      resyncMs,
      podCidr,
      listen: { host: "127.0.0.1", port: 0 },
      tls: agentTls,
      hostInfo: { cpu: "8", memory: "32Gi", hostname: name, internalIP: "127.0.0.1", machineId: name, bootId: name },
    });
    agents.push(agent);
    started.push(agent.start());
    // Spread over one heartbeat period, so that their heartbeats are spread too.
    const due = t0 + ((i + 1) * heartbeatMs) / nodes;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.all(started);
  send({ type: "ready", nodes: agents.length, ms: performance.now() - t0 });
} catch (err) {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}
