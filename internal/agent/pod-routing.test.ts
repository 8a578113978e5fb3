// The agent's pod routing driven by Node objects, against a simulated routing table (the real
// one is exercised by test/multinode).
import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { NodeSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import { createResourceClient } from "../client/resource-client.ts";
import { ROUTE_PROTO, type RouteEntry } from "../network/routes.ts";
import type { RoutingHost } from "./pod-routing.ts";
import { NODE, POD_CIDR, startHarness, waitFor, type Harness } from "./testing.ts";

/** A node's routing table: eth0 on 10.0.0.0/24, default via 10.0.0.1; applies `ip -batch` lines. */
function fakeHost() {
  const routes: RouteEntry[] = [
    { dst: "default", gateway: "10.0.0.1", dev: "eth0" },
    { dst: "10.0.0.0/24", dev: "eth0", protocol: "kernel" },
  ];
  const masquerades: unknown[] = [];
  const host: RoutingHost = {
    readRoutes: async () => ({ routes: structuredClone(routes), addresses: ["10.0.0.11"] }),
    applyRoutes: async (commands) => {
      for (const c of commands) {
        const [, verb, dst, , via] = c.split(" ");
        const i = routes.findIndex((r) => r.dst === dst && r.protocol === String(ROUTE_PROTO));
        if (i >= 0) routes.splice(i, 1);
        if (verb === "replace") routes.push({ dst, gateway: via, dev: "eth0", protocol: String(ROUTE_PROTO) });
      }
    },
    ensureMasquerade: async (o) => void masquerades.push(o),
  };
  const skiffRoutes = () => routes.filter((r) => r.protocol === String(ROUTE_PROTO)).map((r) => `${r.dst} via ${r.gateway}`).sort();
  return { host, skiffRoutes, masquerades };
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function addNode(harness: Harness, name: string, ip: string, podCidr: string) {
  const n = await harness.nodes.create(create(NodeSchema, { metadata: { name }, spec: { podCidr, podCidrs: [podCidr] } }));
  n.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: ip }] } }).status;
  await harness.nodes.updateStatus(n);
}

describe("agent pod routing", () => {
  it("routes to other nodes as they come and go, and installs the masquerade rule", async () => {
    const f = fakeHost();
    h = await startHarness({ podRouting: { clusterCidr: "10.88.0.0/16", network: "skiff", resyncMs: 100, host: f.host } });
    expect(f.masquerades[0]).toEqual({ network: "skiff", podCidr: POD_CIDR, clusterCidr: "10.88.0.0/16" });

    await addNode(h, "node-2", "10.0.0.12", "10.88.2.0/24");
    await addNode(h, "node-3", "10.0.0.13", "10.88.3.0/24");
    await waitFor("routes to node-2 and node-3", () => f.skiffRoutes().length === 2);
    expect(f.skiffRoutes()).toEqual(["10.88.2.0/24 via 10.0.0.12", "10.88.3.0/24 via 10.0.0.13"]);

    await h.nodes.delete("", "node-2");
    await waitFor("route to node-2 gone", () => f.skiffRoutes().length === 1);
    expect(f.skiffRoutes()).toEqual(["10.88.3.0/24 via 10.0.0.13"]);
  });

  it("records a Warning Event on a node that is not on this node's segment, and routes nothing to it", async () => {
    const f = fakeHost();
    h = await startHarness({ podRouting: { clusterCidr: "10.88.0.0/16", network: "skiff", resyncMs: 100, host: f.host } });
    await addNode(h, "far", "192.0.2.7", "10.88.9.0/24");
    const events = createResourceClient<Event>(h.transport, "Event");
    const ev = await waitFor("NodeNotOnSegment event", async () => (await events.list("default")).items.find((e) => e.reason === "NodeNotOnSegment"));
    expect(ev.involvedObject?.name).toBe("far");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("192.0.2.7 is reached via router 10.0.0.1");
    // Reported once, not at every resync.
    await new Promise((r) => setTimeout(r, 500));
    const all = (await events.list("default")).items.filter((e) => e.reason === "NodeNotOnSegment");
    expect(all).toHaveLength(1);
    expect(all[0].count).toBe(1);
    expect(f.skiffRoutes()).toEqual([]);
  });

  it("warns when its Node holds another pod CIDR than the one its pods use", async () => {
    const f = fakeHost();
    h = await startHarness({ podRouting: { clusterCidr: "10.88.0.0/16", network: "skiff", resyncMs: 100, host: f.host } });
    const self = await h.nodes.get("", NODE);
    self.spec!.podCidr = "10.88.77.0/24";
    self.spec!.podCidrs = ["10.88.77.0/24"];
    await h.nodes.update(self);
    const events = createResourceClient<Event>(h.transport, "Event");
    const ev = await waitFor("PodCIDRMismatch event", async () => (await events.list("default")).items.find((e) => e.reason === "PodCIDRMismatch"));
    expect(ev.involvedObject?.name).toBe(NODE);
    expect(ev.message).toContain(`pods use ${POD_CIDR}`);
    expect(ev.message).toContain("10.88.77.0/24");
  });
});
