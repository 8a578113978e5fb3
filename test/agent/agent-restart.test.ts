// An agent that goes away and comes back must not disturb the pods it runs: containers keep
// running under containerd's shims, and the next agent adopts them by their labels (pod uid,
// container name, attempt) and the pod's network by its netns and CNI result cache.
// Two ways: a clean stop of the in-process agent (cluster.ts), and SIGKILL of `skiff agent`
// run as a child process (cli-agent.ts), where nothing in the agent gets to clean up. Pods deleted
// while no agent ran are cleaned up when one comes back.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent } from "../../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../../internal/agent/network.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/index.ts";
import { freePort } from "../harness/ports.ts";
import { freePodCidr } from "../network/leftovers.ts";
import { claimDefaultNetwork, DEFAULT_BRIDGE, DEFAULT_NETWORK, releaseDefaultNetwork, startCliAgent, type CliAgent } from "./cli-agent.ts";
import { INDEX_HTML, cstatus, leftoversOf, startCluster, wget, type Cluster } from "./cluster.ts";
import { clientCertArgs } from "../harness/pki.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));
const runtimeId = (p: Pod, name = "app") => cstatus(p, name)!.containerId.replace(/^containerd:\/\//, "");

describe("agent restarts", () => {
  it("adopts running containers and their network after a clean agent restart", async () => {
    const created = await c.createPod("steady", { containers: [{ name: "web" }] });
    let p = await c.waitForPod("steady", "Running", (p) => p.status?.phase === "Running");
    const ip = p.status!.podIp;
    const before = await c.containersOf(created.metadata!.uid);
    expect(before.map((x) => x.state)).toEqual(["running"]);

    await c.restartAgent();
    await sleep(1500); // a few resyncs of the new agent (500 ms)
    p = await c.pods.get("default", "steady");
    const after = await c.containersOf(created.metadata!.uid);
    expect(after.map((x) => [x.id, x.pid, x.state])).toEqual([[before[0].id, before[0].pid, "running"]]);
    expect([cstatus(p, "web")!.restartCount, runtimeId(p, "web"), p.status!.podIp]).toEqual([0, before[0].id, ip]);
    expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);
    await c.pods.delete("default", "steady", { gracePeriodSeconds: 1n });
    await c.waitForGone("steady");
  });

  it("cleans up pods deleted while it was down: a force-deleted one (an orphan) and a gracefully deleted one", async () => {
    await c.createPod("orphan", { terminationGracePeriodSeconds: 1n, containers: [{ name: "web" }] });
    await c.createPod("graceful", { terminationGracePeriodSeconds: 1n, containers: [{ name: "web" }] });
    const running = (name: string) => c.waitForPod(name, "Running", (p) => p.status?.phase === "Running");
    const [po, pg] = await Promise.all([running("orphan"), running("graceful")]);
    const held = async (p: Pod) => ({ uid: p.metadata!.uid, ip: p.status!.podIp, containerIds: (await c.containersOf(p.metadata!.uid)).map((x) => x.id) });
    const [ho, hg] = [await held(po), await held(pg)];
    expect([ho.containerIds.length, hg.containerIds.length]).toEqual([1, 1]);

    await c.agent.stop();
    // Gone from the API at once (grace 0): nothing tells the node but what it finds at start.
    await c.pods.delete("default", "orphan", { gracePeriodSeconds: 0n });
    expect(await c.getPod("orphan")).toBeUndefined();
    // Waits for the node to confirm.
    await c.pods.delete("default", "graceful");
    await sleep(1500);
    expect((await c.getPod("graceful"))?.metadata?.deletionTimestamp).toBeDefined();
    expect((await c.containersOf(ho.uid)).map((x) => x.state)).toEqual(["running"]);

    c.agent = createAgent(c.agentOptions);
    await c.agent.start();
    // Orphans are removed before the agent reports ready.
    expect(await leftoversOf(c, ho)).toEqual([]);
    await c.waitForGone("graceful");
    expect(await leftoversOf(c, hg)).toEqual([]);
  });

  describe("skiff agent killed with SIGKILL", () => {
    let skipReason: string | undefined;
    let agent: CliAgent | undefined;
    let runtime: ContainerdRuntime;
    let network: PodNetwork;
    let args: string[];
    let nodeName: string;
    let rootDir: string;

    beforeAll(async () => {
      skipReason = await claimDefaultNetwork();
      if (skipReason) return;
      nodeName = `cli-${c.nodeName}`;
      const namespace = `${c.ctrd.namespace}-cli`;
      rootDir = join(c.dir, "cli-root");
      let podCidr = await freePodCidr();
      while (podCidr === c.podCidr) podCidr = await freePodCidr();
      runtime = createContainerdRuntime({ address: c.ctrd.address, namespace });
      await runtime.importImage(c.image.tarPath);
      // The same network the agent builds from its flags (to tear down what a failed test leaves).
      network = createCniNetwork({
        confDir: join(rootDir, "cni", "net.d"),
        stateDir: join(rootDir, "cni"),
        network: { name: DEFAULT_NETWORK, bridge: DEFAULT_BRIDGE, podCidr },
      });
      args = [
        "--server", c.cp.server.url,
        ...clientCertArgs(c.cp.pki, await c.cp.pki.issueClient(`system:node:${nodeName}`, ["system:nodes"]), join(rootDir, "pki"), "node"),
        "--node-name", nodeName,
        "--runtime", "containerd",
        "--containerd", c.ctrd.address,
        "--containerd-namespace", namespace,
        "--root-dir", rootDir,
        "--listen", `127.0.0.1:${await freePort()}`,
        "--pod-cidr", podCidr,
        // Pods are this test's subject; the proxy would write the host-wide table skiff-proxy.
        "--proxy-mode", "none",
      ];
    }, 120_000);

    afterAll(async () => {
      if (skipReason) return;
      await agent?.stop();
      for (const x of (await runtime?.listContainers().catch(() => [])) ?? []) await runtime.removeContainer(x.id).catch(() => undefined);
      for (const uid of (await network?.list().catch(() => [])) ?? []) await network.tearDown(uid).catch(() => undefined);
      await runtime?.close();
      await releaseDefaultNetwork();
    }, 120_000);

    it("keeps the node's pods running, unrestarted, and the next agent adopts them", async (ctx) => {
      if (skipReason) {
        console.warn(`skipped: ${skipReason}`);
        ctx.skip(skipReason);
      }
      agent = await startCliAgent(args, join(c.dir, "cli-agent-1.log"));
      const node = await c.cp.client<Node>("Node").get("", nodeName);
      expect(node.status!.conditions.find((x) => x.type === "Ready")?.status).toBe("True");

      const steady = c.pod("cli-steady", { containers: [{ name: "web" }] });
      steady.spec!.nodeName = nodeName;
      const created = await c.pods.create(steady);
      const uid = created.metadata!.uid;
      let p = await c.waitForPod("cli-steady", "Running", (p) => p.status?.phase === "Running" && cstatus(p, "web")?.state?.running !== undefined);
      const ip = p.status!.podIp;
      const id = runtimeId(p, "web");
      const startedAt = cstatus(p, "web")!.state!.running!.startedAt;
      const [before] = await runtime.listContainers();
      expect([before.id, before.podUid, before.state]).toEqual([id, uid, "running"]);
      expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);

      await agent.kill();
      agent = undefined;
      // Nothing watches the pod now; it keeps running and serving.
      process.kill(before.pid!, 0);
      expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);

      agent = await startCliAgent(args, join(c.dir, "cli-agent-2.log"));
      const readyAt = Date.now();
      // The new agent runs new pods…
      const fresh = c.pod("cli-fresh", { containers: [{ name: "app", command: ["sleep", "3600"] }] });
      fresh.spec!.nodeName = nodeName;
      await c.pods.create(fresh);
      await c.waitForPod("cli-fresh", "Running", (p) => p.status?.phase === "Running");
      // …and, through its first sync and a full resync period (10 s by default), leaves the old one be.
      while (Date.now() < readyAt + 11_000) {
        p = await c.pods.get("default", "cli-steady");
        expect(p.status!.phase).toBe("Running");
        expect([cstatus(p, "web")!.restartCount, runtimeId(p, "web"), p.status!.podIp]).toEqual([0, id, ip]);
        expect(cstatus(p, "web")!.state!.running!.startedAt).toEqual(startedAt);
        const now = (await runtime.listContainers()).filter((x) => x.podUid === uid);
        expect(now.map((x) => [x.id, x.pid, x.state])).toEqual([[id, before.pid, "running"]]);
        await sleep(500);
      }
      expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);
      const touched = agent.logLines().filter((l) => l.pod === "default/cli-steady" || l.podUid === uid);
      expect(touched.map((l) => l.msg)).toEqual([]);

      // Deleting still works through the new agent: it stops what the old one started.
      await c.pods.delete("default", "cli-steady", { gracePeriodSeconds: 1n });
      await c.pods.delete("default", "cli-fresh", { gracePeriodSeconds: 1n });
      await c.waitForGone("cli-steady");
      await c.waitForGone("cli-fresh");
      expect(await runtime.listContainers()).toEqual([]);
      expect(await network.list()).toEqual([]);
    });
  });
});
