// Pod networking across nodes, on three real nodes (test/harness/multinode.ts): each node a
// network namespace on one shared bridge, its own `skiff agent` process, one containerd.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { NodeSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { masqueradeChain } from "../../internal/network/masquerade.ts";
import { bareIPv4, INDEX_HTML, SERVER_PORT, serverContainer, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;
/** A server pod per node (index 0 = node 1). */
const servers: Pod[] = [];

beforeAll(async () => {
  c = await startMultiNode({ nodes: 3 });
  for (const n of c.nodes) await c.createPod(n, `web-${n.index}`, { containers: [serverContainer()] });
  for (const n of c.nodes) servers.push(await c.waitForRunning(`web-${n.index}`));
  // httpd listens a moment after the container starts.
  for (const p of servers) await waitFor(`httpd of ${p.metadata!.name}`, () => c.wgetFromPod(p, `http://127.0.0.1:${SERVER_PORT}/`).then(() => true, () => false), 20_000);
});

afterAll(async () => {
  await c?.stop();
});

const ipOf = (p: Pod) => p.status!.podIp;
/** Asks `server` (from inside `client`) which address the request came from. */
const seenFrom = (client: Pod, server: Pod) => c.sourceSeenBy(server, client);

async function waitForRoute(nodeIndex: number, dst: string, present: boolean, timeoutMs = 15_000) {
  const node = c.node(nodeIndex);
  await waitFor(`route to ${dst} ${present ? "on" : "gone from"} ${node.name}`, async () => (await node.routes()).some((r) => r.dst === dst) === present, timeoutMs);
}

describe("multi-node pod networking", () => {
  it("reports each node's InternalIP, Hostname and pod CIDR in the Node", async () => {
    for (const n of c.nodes) {
      const node = await c.nodeObjects.get("", n.name);
      expect(node.spec?.podCidr).toBe(n.podCidr);
      expect(node.status?.addresses.find((a) => a.type === "InternalIP")?.address).toBe(n.ip);
      expect(node.status?.addresses.find((a) => a.type === "Hostname")?.address).toBe(n.name);
    }
  });

  it("routes every other node's pod CIDR via its InternalIP, and nothing else", async () => {
    for (const n of c.nodes) {
      const want = c.nodes.filter((o) => o !== n).map((o) => ({ dst: o.podCidr, gateway: o.ip })).sort((a, b) => a.dst.localeCompare(b.dst));
      const routes = (await n.routes()).map((r) => ({ dst: r.dst, gateway: r.gateway })).sort((a, b) => a.dst.localeCompare(b.dst));
      expect(routes, n.name).toEqual(want);
    }
  });

  it("pods reach pods on other nodes by IP, both ways, and see each other's pod IP as the source", async () => {
    const [a, b, third] = servers;
    expect(await c.wgetFromPod(a, `http://${ipOf(b)}:${SERVER_PORT}/`)).toBe(INDEX_HTML);
    expect(await c.wgetFromPod(b, `http://${ipOf(a)}:${SERVER_PORT}/`)).toBe(INDEX_HTML);
    // No masquerade between pods: the server sees the client pod's own address.
    expect(await seenFrom(a, b)).toBe(ipOf(a));
    expect(await seenFrom(b, a)).toBe(ipOf(b));
    expect(await seenFrom(third, a)).toBe(ipOf(third));
    expect(await seenFrom(a, third)).toBe(ipOf(a));
  });

  it("masquerades pod traffic leaving the cluster CIDR to the node's address, and repairs that rule", async () => {
    // A server of the test's own on the shared bridge's host address: outside every pod CIDR.
    const seen: string[] = [];
    const server: Server = createServer((req, res) => {
      seen.push(req.socket.remoteAddress ?? "");
      res.end("host\n");
    });
    await new Promise<void>((resolve) => server.listen(0, c.bridgeIP, resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      for (const [i, p] of servers.entries()) {
        expect(await c.wgetFromPod(p, `http://${c.bridgeIP}:${port}/`)).toBe("host\n");
        expect(bareIPv4(seen.at(-1) ?? "")).toBe(c.nodes[i].ip);
      }
      // The rule is repaired when someone flushes it.
      const a = c.node(1);
      const chain = masqueradeChain(a.network);
      expect((await a.exec(["iptables", "-w", "5", "-t", "nat", "-F", chain])).code).toBe(0);
      await waitFor("masquerade rule repaired", async () => (await a.exec(["iptables", "-w", "5", "-t", "nat", "-S", chain])).stdout.includes("-j MASQUERADE"), 15_000);
      expect(await c.wgetFromPod(servers[0], `http://${c.bridgeIP}:${port}/`)).toBe("host\n");
      expect(bareIPv4(seen.at(-1) ?? "")).toBe(a.ip);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("puts a route back that someone removed", async () => {
    const [a, b] = c.nodes;
    const del = await a.exec(["ip", "route", "del", b.podCidr]);
    expect(del.code, del.stderr).toBe(0);
    await waitForRoute(1, b.podCidr, true);
    expect(await c.wgetFromPod(servers[0], `http://${ipOf(servers[1])}:${SERVER_PORT}/`)).toBe(INDEX_HTML);
  });

  it("keeps cross-node traffic working while an agent is killed and after it restarts", async () => {
    const b = c.node(2);
    await b.killAgent();
    // Routes are kernel state: pods keep talking while the agent is down.
    expect(await seenFrom(servers[0], servers[1])).toBe(ipOf(servers[0]));
    await b.startAgent();
    expect(await seenFrom(servers[1], servers[0])).toBe(ipOf(servers[1]));
    // A clean stop and start too.
    await b.restartAgent();
    expect(await seenFrom(servers[0], servers[1])).toBe(ipOf(servers[0]));
    expect(await seenFrom(servers[1], servers[2])).toBe(ipOf(servers[1]));
    expect((await b.routes()).map((r) => r.dst).sort()).toEqual([c.node(1).podCidr, c.node(3).podCidr].sort());
  });

  it("does not route to a node that is not on the same L2 segment, and says so in an Event", async () => {
    const far = create(NodeSchema, {
      metadata: { name: `${c.runName}-far` },
      spec: { podCidr: "10.233.255.0/24", podCidrs: ["10.233.255.0/24"] },
    });
    await c.nodeObjects.create(far);
    const stored = await c.nodeObjects.get("", far.metadata!.name);
    // 198.51.100.0/24 (TEST-NET-2) is reached through the node's default gateway, not directly.
    stored.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: "198.51.100.7" }] } }).status;
    await c.nodeObjects.updateStatus(stored);
    try {
      const events = c.cp.client<Event>("Event");
      const found = await waitFor("NodeNotOnSegment events from every node", async () => {
        const list = (await events.list("default")).items.filter((e) => e.involvedObject?.name === far.metadata!.name && e.reason === "NodeNotOnSegment");
        return new Set(list.map((e) => e.source?.host)).size === c.nodes.length ? list : undefined;
      }, 20_000);
      expect(found[0].type).toBe("Warning");
      expect(found[0].message).toContain("198.51.100.7");
      expect(found[0].message).toContain("L2 segment");
      for (const n of c.nodes) expect((await n.routes()).map((r) => r.dst)).not.toContain("10.233.255.0/24");
    } finally {
      await c.nodeObjects.delete("", far.metadata!.name).catch(() => undefined);
    }
  });

  it("removes the routes to a node whose Node object is deleted, and adds them back when it registers again", async () => {
    const third = c.node(3);
    await third.stopAgent();
    await c.nodeObjects.delete("", third.name);
    await waitForRoute(1, third.podCidr, false);
    await waitForRoute(2, third.podCidr, false);
    // Its pods are unreachable by IP from the others now.
    await expect(c.wgetFromPod(servers[0], `http://${ipOf(servers[2])}:${SERVER_PORT}/`)).rejects.toThrow();

    await third.startAgent();
    await waitForRoute(1, third.podCidr, true);
    await waitForRoute(2, third.podCidr, true);
    expect(await seenFrom(servers[0], servers[2])).toBe(ipOf(servers[0]));
  });
});
