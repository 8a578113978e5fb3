// The node agent end to end on real parts: etcd + apiserver, containerd + runc (root, overlayfs),
// the CNI bridge network in per-pod network namespaces, a busybox-static image imported from an
// OCI layout. Pods are created through the API and observed through the API, the runtime, the
// network and the agent's log service. Every name (network, bridge, netns prefix) and the pod
// CIDR are unique to this run; everything is removed afterwards, a crashed run's leftovers first.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent, type AgentOptions } from "../../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../../internal/agent/network.ts";
import { cstatus, testPod, waitFor } from "../../internal/agent/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { run } from "../../internal/network/exec.ts";
import { listNetns } from "../../internal/network/netns.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/index.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../network/leftovers.ts";

let cp: ControlPlane;
let ctrd: ContainerdServer;
let runtime: ContainerdRuntime;
let network: PodNetwork;
let agent: Agent;
let agentOptions: AgentOptions;
let pods: ResourceClient<Pod>;
let image: BuiltImage;
let dir: string;
let name: string;

beforeAll(async () => {
  await sweepCrashedRuns();
  name = runName();
  const cidr = await freePodCidr();
  dir = mkdtempSync(join(tmpdir(), "skiff-agent-e2e-"));
  [cp, ctrd] = await Promise.all([startControlPlane(), startContainerd()]);
  runtime = createContainerdRuntime({ address: ctrd.address, namespace: ctrd.namespace });
  image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1", indexHtml: "hello from skiff\n" });
  await runtime.importImage(image.tarPath);
  network = createCniNetwork({
    confDir: join(dir, "net.d"),
    stateDir: join(dir, "cni"),
    network: { name, bridge: name, podCidr: cidr },
  });
  agentOptions = {
    transport: cp.transport,
    nodeName: "e2e-node",
    runtime,
    network,
    rootDir: join(dir, "root"),
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    podCidr: cidr,
    heartbeatMs: 500,
    resyncMs: 500,
    crashLoopBackoff: { initialMs: 200, maxMs: 1000 },
    probeSecondMs: 200,
  };
  agent = createAgent(agentOptions);
  await agent.start();
  pods = cp.client<Pod>("Pod");
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  for (const c of (await runtime?.listContainers().catch(() => [])) ?? []) {
    await runtime.stopContainer(c.id, 0).catch(() => undefined);
    await runtime.removeContainer(c.id).catch(() => undefined);
    await network.tearDown(c.podUid).catch(() => undefined);
  }
  await runtime?.close();
  if (name) await removeRun(name).catch(() => undefined);
  await removeUnusedPortmapChains().catch(() => undefined);
  await ctrd?.stop();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const onNode = (p: Pod) => {
  p.spec!.nodeName = "e2e-node";
  for (const c of [...p.spec!.containers, ...p.spec!.initContainers]) {
    c.image = image.ref;
    c.imagePullPolicy = "Never";
  }
  return p;
};

const waitForPod = (podName: string, what: string, pred: (p: Pod) => boolean) =>
  waitFor(`pod ${podName}: ${what}`, async () => {
    const p = await pods.get("default", podName);
    return pred(p) ? p : undefined;
  }, 30_000);

async function wget(url: string): Promise<string> {
  const r = await run("timeout", ["5", "busybox", "wget", "-qO-", url]);
  if (r.code !== 0) throw new Error(`wget ${url}: exit ${r.code}`);
  return r.stdout;
}

async function logs(podName: string, previous = false): Promise<string> {
  const client = createClient(AgentService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${agent.port()}` }));
  let out = "";
  for await (const c of client.logs({ namespace: "default", pod: podName, previous })) out += Buffer.from(c.data).toString();
  return out;
}

describe("agent on containerd + CNI", () => {
  it("runs a web server pod: Running, Ready by an HTTP probe, reachable at its pod IP; deleting it cleans up", async () => {
    const pod = onNode(testPod("web", { containers: [{ name: "web", readinessProbe: { httpGet: { path: "/index.html", port: "80" }, periodSeconds: 1 } as any }] }));
    const created = await pods.create(pod);
    const p = await waitForPod("web", "Running and Ready", (p) => p.status?.phase === "Running" && cstatus(p, "web")?.ready === true);
    const ip = p.status!.podIp;
    expect(ip).toMatch(/^10\.231\.\d+\.\d+$/);
    expect(cstatus(p, "web")!.containerId).toMatch(/^containerd:\/\//);
    expect(await wget(`http://${ip}/`)).toBe("hello from skiff\n");
    expect(listNetns()).toContain(`${name}-${created.metadata!.uid}`);

    await pods.delete("default", "web", { gracePeriodSeconds: 2n });
    await waitFor("pod gone", async () => {
      try {
        await pods.get("default", "web");
        return false;
      } catch (err) {
        return ConnectError.from(err).code === Code.NotFound;
      }
    }, 30_000);
    expect((await runtime.listContainers()).filter((c) => c.podUid === created.metadata!.uid)).toEqual([]);
    expect(listNetns()).not.toContain(`${name}-${created.metadata!.uid}`);
  });

  it("reports a failing command's exit code and keeps its output for logs, with env from the pod", async () => {
    await pods.create(onNode(testPod("echo", {
      restartPolicy: "Never",
      containers: [{
        name: "app",
        command: ["sh", "-c", 'echo "hello $POD_NAME on $(hostname)"; echo oops >&2; exit 3'],
        env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }] as any,
      }],
    })));
    const p = await waitForPod("echo", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 3, reason: "Error" });
    // stdout and stderr are copied separately: their order in the file is not guaranteed.
    expect((await logs("echo")).split("\n").sort()).toEqual(["", "hello echo on echo", "oops"]);
  });

  it("restarts a crashing container and serves the previous instance's log", async () => {
    await pods.create(onNode(testPod("crash", { containers: [{ name: "app", command: ["sh", "-c", "echo run; exit 1"] }] })));
    const p = await waitForPod("crash", "restarted", (p) => (cstatus(p)?.restartCount ?? 0) >= 1);
    expect(cstatus(p)!.lastState!.terminated!.exitCode).toBe(1);
    expect(await logs("crash", true)).toBe("run\n");
  });

  it("shows the runtime's error for a command missing from the image", async () => {
    await pods.create(onNode(testPod("nocmd", { containers: [{ name: "app", command: ["/no/such/binary"] }] })));
    const p = await waitForPod("nocmd", "start error", (p) => ["CreateContainerError", "RunContainerError"].includes(cstatus(p)?.state?.waiting?.reason ?? ""));
    expect(cstatus(p)!.state!.waiting!.message).toMatch(/^create container app of pod default\/nocmd: .*"\/no\/such\/binary": stat \/no\/such\/binary: no such file or directory/);
  });

  it("reports OOMKilled for a container over its memory limit", async () => {
    await pods.create(onNode(testPod("hog", {
      restartPolicy: "Never",
      containers: [{ name: "app", command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], resources: { limits: { memory: "20Mi" } } as any }],
    })));
    const p = await waitForPod("hog", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p)!.state!.terminated!.reason).toBe("OOMKilled");
  });

  it("adopts running containers and their network after an agent restart", async () => {
    const created = await pods.create(onNode(testPod("steady")));
    let p = await waitForPod("steady", "Running", (p) => p.status?.phase === "Running");
    const ip = p.status!.podIp;
    const [before] = (await runtime.listContainers()).filter((c) => c.podUid === created.metadata!.uid);
    await agent.stop();
    agent = createAgent(agentOptions);
    await agent.start();
    await new Promise((r) => setTimeout(r, 1500)); // a few resyncs
    p = await pods.get("default", "steady");
    const after = (await runtime.listContainers()).filter((c) => c.podUid === created.metadata!.uid);
    expect(after.map((c) => [c.id, c.state])).toEqual([[before.id, "running"]]);
    expect(cstatus(p)!.restartCount).toBe(0);
    expect(p.status!.podIp).toBe(ip);
    expect(await wget(`http://${ip}/`)).toBe("hello from skiff\n");
  });
});
