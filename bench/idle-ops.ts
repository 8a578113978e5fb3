// `npm run bench -- idle-ops`: what each kind of steady per-node operation costs, in CPU µs per
// operation of the apiserver, etcd and the client side (this process), so that the idle rate of
// `bench scale` (500 nodes Ready, no pods) can be taken apart. N node identities
// (system:node:<name>, each on its own TLS connection, as hollow and real agents are), phase by
// phase, each measured alone:
//
//   connections   N open connections, nothing but the client's keepalive pings (every 10 s)
//   leases        + each node renews its Lease every 10 s (internal/agent/lease.ts, spread)
//                 and again with the same renewals 10 at a time (what batching would save)
//   node status   + each node writes its Node status every 10 s (a new heartbeat time)
//   watches       + each node holds a Pod (its own, field-selected), a Service and a
//                 PersistentVolume watch, nothing written: the apiserver's BOOKMARKs (30 s)
//
// A phase's figure is its CPU minus the phase before's rate, divided by its operations.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Lease } from "../gen/skiff/v1alpha1/coordination_pb.js";
import { ConditionSchema } from "../gen/skiff/v1alpha1/meta_pb.js";
import { NodeSchema, NodeStatusSchema, type Node } from "../gen/skiff/v1alpha1/node_pb.js";
import { createNodeLease } from "../internal/agent/lease.ts";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { startBenchControlPlane } from "./lib/control-plane.ts";
import { cpuMark, cpuSince, type CpuSample, type Groups } from "./lib/proc.ts";
import { renderTable } from "./lib/table.ts";

const options = {
  nodes: { type: "string", default: "500" },
  seconds: { type: "string", default: "20" },
  "watch-seconds": { type: "string", default: "40" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- idle-ops [options]

  --nodes N            node identities, each on its own TLS connection (default 500)
  --seconds S          length of the connections, leases and node status phases (default 20)
  --watch-seconds S    length of the watches phase; ≥ 30 s sees one BOOKMARK per watch (default 40)`;

const PERIOD_MS = 10_000;
/** The same renewals, that many at one moment: how much of a lone call's cost is waking up for it. */
const BURST = 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (v.help) {
    console.log(help);
    return;
  }
  const n = Number(v.nodes);
  const seconds = Number(v.seconds);
  const watchSeconds = Number(v["watch-seconds"]);
  console.log(`Skiff idle-ops benchmark, ${new Date().toISOString()}; ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const cp = await startBenchControlPlane({ inProcess: false });
  const admin = createApiTransport(cp.url, cp.credentials);
  const groups: Groups = {
    apiserver: (p) => p.pid === cp.serverPid,
    etcd: (p) => p.cmdline.includes(cp.etcd.dataDir),
    "client side": (p) => p.pid === process.pid,
  };
  const order = ["apiserver", "etcd", "client side"];

  // Nodes exist (created by the admin) and each agent has its own certificate and connection.
  const names = Array.from({ length: n }, (_, i) => `idle-${String(i).padStart(4, "0")}`);
  const adminNodes = createResourceClient<Node>(admin, "Node");
  const transports: Transport[] = [];
  for (const name of names) {
    await adminNodes.create(create(NodeSchema, { metadata: { name } }));
    transports.push(createApiTransport(cp.url, await cp.pki.nodeCredentials(name)));
  }
  const nodeClients = transports.map((t) => createResourceClient<Node>(t, "Node"));
  const nodes = await Promise.all(names.map((name, i) => nodeClients[i].get("", name))); // opens each connection
  const leases = names.map((name, i) =>
    createNodeLease({ client: createResourceClient<Lease>(transports[i], "Lease"), nodeName: name, durationSeconds: 40, node: () => nodes[i] }),
  );
  await Promise.all(leases.map((l) => l.renew()));
  await sleep(2000);

  /**
   * Runs `each(i)` for every node once per period, spread over it (in groups of `burst` nodes at
   * the same moment), for `ms`; returns the count.
   */
  async function everyPeriod(ms: number, each: (i: number) => Promise<unknown>, burst = 1): Promise<number> {
    let count = 0;
    const end = performance.now() + ms;
    const timers = names.map((_, i) =>
      setTimeout(function tick() {
        if (performance.now() >= end) return;
        count++;
        void each(i).catch((err) => console.error(String(err)));
        timers[i] = setTimeout(tick, PERIOD_MS);
      }, (Math.floor(i / burst) * burst * PERIOD_MS) / n),
    );
    await sleep(ms);
    for (const t of timers) clearTimeout(t);
    return count;
  }
  const measure = async (body: () => Promise<number>): Promise<{ cpu: CpuSample; ops: number }> => {
    const mark = cpuMark(groups);
    const ops = await body();
    return { cpu: cpuSince(groups, mark), ops };
  };

  process.stdout.write(`${n} nodes connected; measuring `);
  const idle = await measure(async () => {
    await sleep(seconds * 1000);
    return (n * seconds * 1000) / PERIOD_MS; // keepalive pings
  });
  process.stdout.write("connections, ");
  const leasePhase = await measure(() => everyPeriod(seconds * 1000, (i) => leases[i].renew()));
  process.stdout.write("leases, ");
  const burstPhase = await measure(() => everyPeriod(seconds * 1000, (i) => leases[i].renew(), BURST));
  process.stdout.write(`leases in bursts of ${BURST}, `);
  let beat = 0;
  const statusPhase = await measure(() =>
    everyPeriod(seconds * 1000, async (i) => {
      const now = timestampFromDate(new Date(Date.now() + beat++));
      const status = { ...(nodes[i].status ?? create(NodeStatusSchema)), conditions: [create(ConditionSchema, { type: "Ready", status: "True", reason: "KubeletReady", lastHeartbeatTime: now, lastTransitionTime: now })] };
      nodes[i] = await nodeClients[i].updateStatus({ ...nodes[i], status, metadata: { ...nodes[i].metadata!, resourceVersion: "" } });
    }),
  );
  process.stdout.write("node status, ");
  const stop = new AbortController();
  let bookmarks = 0;
  const watches = names.flatMap((name, i) =>
    (
      [
        ["Pod", { fieldSelector: `spec.nodeName=${name}` }],
        ["Service", {}],
        ["PersistentVolume", {}],
      ] as const
    ).map(([kind, opts]) =>
      (async () => {
        for await (const e of createResourceClient(transports[i], kind).watch("", { ...opts, signal: stop.signal })) if (e.type === "BOOKMARK") bookmarks++;
      })().catch(() => {}),
    ),
  );
  await sleep(3000); // opened, initial state and first BOOKMARK delivered
  const firstBookmarks = bookmarks;
  const watchPhase = await measure(async () => {
    await sleep(watchSeconds * 1000);
    return bookmarks - firstBookmarks;
  });
  stop.abort();
  await Promise.allSettled(watches);
  console.log("watches: done");

  const perSecond = (s: CpuSample, g: string) => s.seconds[g] / s.wallS;
  const rows: string[][] = [];
  const row = (label: string, phase: { cpu: CpuSample; ops: number }, base: CpuSample | undefined) => {
    const cells = order.map((g) => {
      const extra = phase.cpu.seconds[g] - (base ? perSecond(base, g) * phase.cpu.wallS : 0);
      // No operation in the phase (a watches phase shorter than the BOOKMARK interval): no figure.
      return phase.ops === 0 ? "–" : `${((extra / phase.ops) * 1e6).toFixed(0)}`;
    });
    rows.push([label, String(phase.ops), (phase.ops / phase.cpu.wallS).toFixed(1), ...cells, phase.cpu.pct.other.toFixed(0)]);
  };
  row("keepalive ping (connections phase, per ping)", idle, undefined);
  row("Lease renewal (Update)", leasePhase, idle.cpu);
  row(`Lease renewal, ${BURST} at one moment`, burstPhase, idle.cpu);
  row("Node UpdateStatus", statusPhase, idle.cpu);
  row("watch BOOKMARK (3 watches per node)", watchPhase, idle.cpu);
  console.log(`\nCPU µs per operation (the phase's CPU less the connections phase's rate); "other" = % of a core other processes used`);
  console.log(renderTable(["operation", "count", "per s", ...order.map((g) => `${g} µs`), "other %"], rows, "  "));
  console.log(`\nconnections phase, % of one core: ${order.map((g) => `${g} ${idle.cpu.pct[g].toFixed(1)}`).join(", ")}`);
}
