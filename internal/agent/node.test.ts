import { timestampDate } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { parseQuantity } from "../api/quantity.ts";
import { memoryQuantity } from "./host-info.ts";
import { NODE, POD_CIDR, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("node registration", () => {
  it("registers the Node with labels, capacity, addresses, nodeInfo, Ready and the agent's port", async () => {
    h = await startHarness();
    const node = await h.nodes.get("", NODE);
    expect(node.metadata!.labels).toMatchObject({
      "kubernetes.io/hostname": NODE,
      "kubernetes.io/os": "linux",
      "kubernetes.io/arch": expect.stringMatching(/^(amd64|arm64|.+)$/),
    });
    expect(node.spec!.podCidr).toBe(POD_CIDR);
    const s = node.status!;
    expect(Number(s.capacity.cpu)).toBeGreaterThan(0);
    expect(s.capacity.memory).toMatch(/^\d+(Ki|Mi|Gi)?$/);
    expect(parseQuantity(s.capacity.memory).milliValue).toBeGreaterThan(0n);
    expect(s.capacity.pods).toBe("110");
    expect(s.allocatable).toEqual(s.capacity);
    expect(s.addresses.map((a) => a.type)).toEqual(["InternalIP", "Hostname"]);
    // The agent listens on 127.0.0.1, so that is where clients find it.
    expect(s.addresses[0].address).toBe("127.0.0.1");
    expect(s.nodeInfo!.containerRuntimeVersion).toBe("fake://0.1.0");
    expect(s.nodeInfo!.kernelVersion).not.toBe("");
    expect(s.nodeInfo!.operatingSystem).toBe("linux");
    expect(s.daemonEndpoints!.kubeletEndpoint!.port).toBe(h.agent.port());
    const ready = s.conditions.find((c) => c.type === "Ready")!;
    expect(ready.status).toBe("True");
    expect(ready.lastHeartbeatTime).toBeDefined();
  });

  it("updates an existing Node instead of failing, keeping its labels", async () => {
    h = await startHarness();
    const node = await h.nodes.get("", NODE);
    node.metadata!.labels.zone = "a";
    await h.nodes.update(node);
    await h.restartAgent();
    const again = await h.nodes.get("", NODE);
    expect(again.metadata!.uid).toBe(node.metadata!.uid);
    expect(again.metadata!.labels.zone).toBe("a");
    expect(again.metadata!.labels["kubernetes.io/hostname"]).toBe(NODE);
  });

  it("renews a Lease named after the node in skiff-system every heartbeat", async () => {
    h = await startHarness();
    const first = await waitFor("lease", () => h!.leases.get("skiff-system", NODE));
    expect(first.spec!.holderIdentity).toBe(NODE);
    expect(first.spec!.leaseDurationSeconds).toBe(40);
    expect(first.metadata!.ownerReferences[0]).toMatchObject({ kind: "Node", name: NODE });
    const t0 = timestampDate(first.spec!.renewTime!).getTime();
    const later = await waitFor("lease renewed", async () => {
      const l = await h!.leases.get("skiff-system", NODE);
      return timestampDate(l.spec!.renewTime!).getTime() > t0 ? l : undefined;
    });
    expect(Number(later.metadata!.resourceVersion)).toBeGreaterThan(Number(first.metadata!.resourceVersion));
  });

  it("re-writes the node status with a new heartbeat every statusRefreshMs, not every heartbeat", async () => {
    h = await startHarness({ statusRefreshMs: 600 });
    const writes = h.count("NodeService/UpdateStatus");
    const hb = async () => {
      const n = await h!.nodes.get("", NODE);
      return timestampDate(n.status!.conditions.find((c) => c.type === "Ready")!.lastHeartbeatTime!).getTime();
    };
    const t0 = await hb();
    await waitFor("new heartbeat", async () => (await hb()) > t0);
    // Heartbeats every 100 ms, refreshes every 600 ms: a handful of writes, not one per heartbeat.
    await new Promise((r) => setTimeout(r, 700));
    const made = h.count("NodeService/UpdateStatus") - writes;
    expect(made).toBeGreaterThanOrEqual(1);
    expect(made).toBeLessThanOrEqual(4);
  });

  it("writes a changed node status at the next heartbeat, long before statusRefreshMs", async () => {
    h = await startHarness({ statusRefreshMs: 600_000 });
    await h.runtime.pullImage("registry.test/new:v1");
    const n = await waitFor("the new image in the node status", async () => {
      const node = await h!.nodes.get("", NODE);
      return node.status!.images.some((i) => i.names.includes("registry.test/new:v1")) ? node : undefined;
    });
    // The write kept what it did not change.
    expect(n.metadata!.labels["kubernetes.io/hostname"]).toBe(NODE);
    expect(n.status!.conditions.find((c) => c.type === "Ready")!.status).toBe("True");
  });

  // Without pod routing the agent watches its own Node; with it, the routing's informer of every
  // Node feeds the same check (one Node watch per agent either way).
  const noRoutes = { readRoutes: async () => ({ routes: [], addresses: [] }), applyRoutes: async () => {}, ensureMasquerade: async () => {} };
  it.each([
    ["its own Node watch", {}],
    ["the pod routing's Node informer", { podRouting: { clusterCidr: "10.88.0.0/16", network: "skiff", resyncMs: 60_000, host: noRoutes } }],
  ])("writes Ready=True over a status someone else wrote (the lifecycle controller's Unknown) at the next heartbeat, long before statusRefreshMs (%s)", async (_how, extra) => {
    h = await startHarness({ statusRefreshMs: 600_000, ...extra });
    const node = await h.nodes.get("", NODE);
    for (const c of node.status!.conditions) c.status = "Unknown";
    const marked = await h.nodes.updateStatus(node);
    const back = await waitFor("Ready=True again", async () => {
      const n = await h!.nodes.get("", NODE);
      return n.status!.conditions.find((c) => c.type === "Ready")!.status === "True" ? n : undefined;
    });
    expect(Number(back.metadata!.resourceVersion)).toBeGreaterThan(Number(marked.metadata!.resourceVersion));
  });

  it("re-registers when the Node object is deleted", async () => {
    h = await startHarness({ statusRefreshMs: 200 });
    const before = await h.nodes.get("", NODE);
    await h.nodes.delete("", NODE);
    const after = await waitFor("node registered again", async () => {
      const n = await h!.nodes.get("", NODE);
      return n.metadata!.uid !== before.metadata!.uid && n.status?.capacity.pods ? n : undefined;
    });
    expect(after.status!.conditions.find((c) => c.type === "Ready")!.status).toBe("True");
  });
});

describe("memoryQuantity", () => {
  it("prints bytes the way Kubernetes does", () => {
    expect(memoryQuantity(24 * 2 ** 30)).toBe("24Gi");
    expect(memoryQuantity(16331468 * 1024)).toBe("16331468Ki");
    expect(memoryQuantity(1000)).toBe("1k");
  });
});
