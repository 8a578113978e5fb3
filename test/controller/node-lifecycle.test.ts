// The node lifecycle controller on a real etcd control plane, with the real node agent (fake
// container runtime, fake pod IPs) providing the heartbeat: the agent stops → the node goes
// Unknown and is tainted unreachable → its pods are marked not ready, evicted after their
// toleration and, since no agent can confirm, force-deleted after their grace period → the agent
// comes back → its lease renews and the taints are lifted.
import { clone } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent } from "../../internal/agent/agent.ts";
import { createNodeLease } from "../../internal/agent/lease.ts";
import type { AgentServingTls } from "../../internal/agent/server.ts";
import { createHostNetwork } from "../../internal/agent/network.ts";
import { createNodeLifecycleController } from "../../internal/controller/node/lifecycle.ts";
import { TAINT_UNREACHABLE } from "../../internal/controller/node/taints.ts";
import { controllerHarness, gone, sleep, testNode, testPod, waitFor, type ControllerHarness } from "../../internal/controller/node/testing.ts";
import { testPki } from "../../internal/pki/testing.ts";
import { createFakeRuntime } from "../../internal/runtime/fake/fake.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";

const GRACE_MS = 1500;
const EVICTION_MS = 3000;

let cp: ControlPlane;
let h: ControllerHarness;
let rootDir: string;
let agentTls: AgentServingTls;
const runtime = createFakeRuntime();

beforeAll(async () => {
  cp = await startControlPlane();
  // One loopback serving certificate for every agent here: the apiserver dials each at 127.0.0.1.
  agentTls = await (await testPki()).agentServing("lifecycle-agent");
  rootDir = makeTempDir("skiff-nodelifecycle-");
  writeFileSync(join(rootDir, "resolv.conf"), "nameserver 192.0.2.53\n");
  // Settings through ControllerContext.options, as the controller-manager passes its flags.
  h = controllerHarness(cp.transport, { nodeMonitorGracePeriodMs: GRACE_MS, podEvictionTimeoutMs: EVICTION_MS, clusterCidr: "10.244.0.0/16" });
  await h.start(createNodeLifecycleController(h.ctx));
});

afterAll(async () => {
  await h?.close();
  await cp?.stop();
  if (rootDir) removeTempDir(rootDir);
});

function agentFor(nodeName: string): Agent {
  return createAgent({
    transport: cp.transport,
    nodeName,
    runtime,
    network: createHostNetwork({ podCidr: "10.88.0.0/24", stateDir: join(rootDir, "network") }),
    rootDir: join(rootDir, "agent"),
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    tls: agentTls,
    heartbeatMs: 200,
    statusRefreshMs: 1000,
    resyncMs: 300,
    resolvConfPath: join(rootDir, "resolv.conf"),
  });
}

const taintsOf = (n: Node) => (n.spec?.taints ?? []).map((t) => `${t.key}:${t.effect}`).sort();
const ready = (n: Node) => n.status?.conditions.find((c) => c.type === "Ready")?.status;
const podReady = (p: Pod) => p.status?.conditions.find((c) => c.type === "Ready")?.status;

describe("node lifecycle on etcd", () => {
  it("a node whose agent stops goes Unknown, its pods are evicted and force-deleted; it recovers when the agent returns", async () => {
    const nodes = cp.client<Node>("Node");
    const pods = cp.client<Pod>("Pod");
    let agent = agentFor("worker-1");
    await agent.start();
    const tolerate = (s: number) => [{ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoExecute", tolerationSeconds: BigInt(s) }];
    await pods.create(testPod("short", { nodeName: "worker-1", tolerations: tolerate(1), graceSeconds: 1 }));
    await pods.create(testPod("default", { nodeName: "worker-1", graceSeconds: 1 }));
    await pods.create(testPod("forever", { nodeName: "worker-1", tolerations: [{ key: TAINT_UNREACHABLE, operator: "Exists", effect: "NoExecute" }] }));
    for (const name of ["short", "default", "forever"]) {
      await waitFor(`${name} running and ready`, async () => podReady(await pods.get("default", name)) === "True", 20_000);
    }
    // The controller gave the node a pod CIDR (the agent here was started without one).
    expect((await nodes.get("", "worker-1")).spec?.podCidr).toMatch(/^10\.244\.\d+\.0\/24$/);
    await sleep(GRACE_MS + 500);
    expect(taintsOf(await nodes.get("", "worker-1"))).toEqual([]);

    await agent.stop();
    const stoppedAt = Date.now();
    const n = await waitFor("Unknown + unreachable taints", async () => {
      const x = await nodes.get("", "worker-1");
      return ready(x) === "Unknown" && taintsOf(x).length === 2 && x;
    });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(GRACE_MS - 300);
    expect(taintsOf(n)).toEqual([`${TAINT_UNREACHABLE}:NoExecute`, `${TAINT_UNREACHABLE}:NoSchedule`]);
    await waitFor("pods not ready", async () => (await pods.list("default")).items.every((p) => podReady(p) === "False"));

    const added = timestampMs(n.spec!.taints.find((t) => t.effect === "NoExecute")!.timeAdded!);
    const shortEvicted = await waitFor("short evicted", async () => (await pods.get("default", "short")).metadata?.deletionTimestamp && Date.now());
    expect(shortEvicted - added).toBeGreaterThanOrEqual(900);
    expect(shortEvicted - added).toBeLessThan(EVICTION_MS);
    // Nobody confirms on a dead node: force-deleted once its 1 s grace is over.
    await waitFor("short force-deleted", () => gone(pods, "default", "short"));
    const defaultEvicted = await waitFor("default evicted", async () => (await pods.get("default", "default")).metadata?.deletionTimestamp && Date.now(), 10_000);
    expect(defaultEvicted - added).toBeGreaterThanOrEqual(EVICTION_MS - 100);
    await waitFor("default force-deleted", () => gone(pods, "default", "default"));
    expect((await pods.get("default", "forever")).metadata?.deletionTimestamp).toBeUndefined();

    agent = agentFor("worker-1");
    await agent.start();
    const back = await waitFor("taints lifted, Ready again", async () => {
      const x = await nodes.get("", "worker-1");
      return taintsOf(x).length === 0 && ready(x) === "True" && x;
    });
    expect(back.spec?.podCidr).toBe(n.spec?.podCidr);
    await waitFor("forever ready again", async () => podReady(await pods.get("default", "forever")) === "True", 20_000);
    await agent.stop();
  });

  it("a lease that stops renewing taints the node; renewing lifts the taints", async () => {
    const nodes = cp.client<Node>("Node");
    const node = await nodes.create(testNode("worker-2", { ready: "True" }));
    const lease = createNodeLease({ client: cp.client<Lease>("Lease"), nodeName: "worker-2", durationSeconds: 40, node: () => node });
    const renew = async (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) await lease.renew();
    };
    await renew(GRACE_MS * 2);
    expect(taintsOf(await nodes.get("", "worker-2"))).toEqual([]);
    await waitFor("tainted", async () => taintsOf(await nodes.get("", "worker-2")).length === 2);
    await lease.renew();
    await waitFor("untainted", async () => taintsOf(await nodes.get("", "worker-2")).length === 0);
    // Ready stays Unknown until the agent writes it (it is the agent's condition to set).
    const x = await nodes.get("", "worker-2");
    expect(ready(x)).toBe("Unknown");
    const next = clone(NodeSchema, x);
    next.status!.conditions.find((c) => c.type === "Ready")!.status = "True";
    await nodes.updateStatus(next);
  });
});
