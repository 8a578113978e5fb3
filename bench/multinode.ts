// `npm run bench -- multinode`: pod networking across real nodes on this machine
// (test/harness/multinode.ts: a netns per node on a shared bridge, an agent process each).
//
//   bring-up    harness start with N nodes (bridge, control plane, containerd, agents ready)
//   requests    HTTP GETs from a pod on node 1, one after the other in one shell loop inside the
//               pod's netns: to a pod on the same node, and to a pod on node 2 (host-gateway
//               route, no NAT). Per request, including busybox wget's own start.
//   routes      a Node object (no agent) with an InternalIP on the shared segment is created,
//               then deleted: the time until every agent has installed, then removed, its route.
//               The agents react to the Node watch; --route-resync only repairs.
import { create } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { NodeSchema } from "../gen/skiff/v1alpha1/node_pb.js";
import { SERVER_PORT, serverContainer, startMultiNode, waitFor, type MultiNodeCluster } from "../test/harness/multinode.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { summarize } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";

const options = {
  nodes: { type: "string", default: "3" },
  requests: { type: "string", default: "200" },
  rounds: { type: "string", default: "10" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- multinode [options]

  --nodes N      nodes to bring up (default 3, 2 to 14)
  --requests N   HTTP requests per path, same node and across nodes (default 200)
  --rounds N     Node create/delete rounds for route convergence (default 10)

Needs root and what the integration tests need (etcd-server, containerd, runc,
containernetworking-plugins, busybox-static, iproute2, iptables).`;

function int(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** ms per request of `n` sequential wgets from inside the pod's netns. */
async function requestLoop(c: MultiNodeCluster, from: string, url: string, n: number): Promise<number> {
  const pod = await c.pods.get("default", from);
  const loop = `i=0; while [ $i -lt ${n} ]; do busybox wget -qO- ${url} >/dev/null || exit 1; i=$((i+1)); done`;
  const t0 = performance.now();
  const r = await c.execInPod(pod, ["busybox", "sh", "-c", loop]);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`request loop to ${url} failed: ${r.stderr.trim()}`);
  return ms / n;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const nodes = int("nodes", values.nodes, 2);
  if (nodes > 14) throw new Error(`--nodes must be at most 14, got ${nodes}`);
  const requests = int("requests", values.requests, 1);
  const rounds = int("rounds", values.rounds, 1);

  let t0 = performance.now();
  const c = await startMultiNode({ nodes });
  onCleanup(() => c.stop());
  const bringUp = performance.now() - t0;

  for (const [name, node] of [["a", 1], ["b", 1], ["x", 2]] as const) await c.createPod(c.node(node), name, { containers: [serverContainer()] });
  const [, b, x] = [await c.waitForRunning("a"), await c.waitForRunning("b"), await c.waitForRunning("x")];
  for (const p of [b, x]) {
    await waitFor(`httpd of ${p.metadata!.name}`, async () => (await c.execInPod(p, ["busybox", "wget", "-qO-", `http://127.0.0.1:${SERVER_PORT}/`])).code === 0, 20_000);
  }
  // Interleaved in 4 blocks, order alternating, so that warm-up and load changes hit both alike.
  const same: number[] = [];
  const cross: number[] = [];
  const block = Math.max(1, Math.ceil(requests / 4));
  for (let i = 0; i < 4; i++) {
    const legs = [
      async () => same.push(await requestLoop(c, "a", `http://${b.status!.podIp}:${SERVER_PORT}/`, block)),
      async () => cross.push(await requestLoop(c, "a", `http://${x.status!.podIp}:${SERVER_PORT}/`, block)),
    ];
    if (i % 2 === 1) legs.reverse();
    for (const leg of legs) await leg();
  }
  const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
  const sameNode = mean(same);
  const crossNode = mean(cross);

  // A Node with an address on the segment that nothing answers: routes are installed (the next
  // hop is a neighbour), no traffic is sent to it.
  const fakeIP = c.bridgeIP.replace(/\.1$/, ".250");
  // The last /24 of the run's /20 cluster CIDR: the harness gives nodes 1..N the first ones.
  const fakeCidr = `10.233.${Number(c.clusterCidr.split(".")[2]) + 15}.0/24`;
  const added: number[] = [];
  const removed: number[] = [];
  const everywhere = async (present: boolean) => {
    for (;;) {
      const all = await Promise.all(c.nodes.map(async (n) => (await n.routes()).some((r) => r.dst === fakeCidr)));
      if (all.every((v) => v === present)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  for (let i = 0; i < rounds; i++) {
    const name = `bench-far-${i}`;
    t0 = performance.now();
    const n = await c.nodeObjects.create(create(NodeSchema, { metadata: { name }, spec: { podCidr: fakeCidr, podCidrs: [fakeCidr] } }));
    n.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: fakeIP }] } }).status;
    await c.nodeObjects.updateStatus(n);
    await everywhere(true);
    added.push(performance.now() - t0);
    t0 = performance.now();
    await c.nodeObjects.delete("", name);
    await everywhere(false);
    removed.push(performance.now() - t0);
  }

  const s = (xs: number[]) => summarize(xs);
  console.log(`\nmultinode: ${nodes} nodes (netns on one bridge, an agent process each, one containerd)\n`);
  console.log(renderTable(["what", "figure"], [
    ["bring-up (bridge, etcd, apiserver, containerd, agents ready)", `${fmtMs(bringUp)} ms`],
    [`HTTP GET, pod → pod on the same node (${block * 4}, sequential)`, `${fmtMs(sameNode)} ms / request`],
    [`HTTP GET, pod → pod on another node (${block * 4}, sequential)`, `${fmtMs(crossNode)} ms / request`],
  ], "  "));
  console.log(`\n  route convergence on all ${nodes} nodes over ${rounds} rounds (Node created with its address → route everywhere; Node deleted → route gone everywhere):\n`);
  console.log(renderTable(["ms", "p50", "p99", "max"], [
    ["added", fmtMs(s(added).p50), fmtMs(s(added).p99), fmtMs(s(added).max)],
    ["removed", fmtMs(s(removed).p50), fmtMs(s(removed).p99), fmtMs(s(removed).max)],
  ], "  "));
  console.log("\n  (request figures include starting busybox wget for each request; the route figures include polling `ip route` every 10 ms)");
}
