// Test harness for the agent's unit tests: an in-process apiserver on the memory store, the fake
// runtime, the host (fake-IP) network, and an agent with short timings. Not used by the agent.
import { create } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Container, type Pod, type PodSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createResourceClient, type ResourceClient } from "../client/resource-client.ts";
import { createFakeRuntime, type FakeRuntime } from "../runtime/fake/fake.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { createAgent, type Agent, type AgentOptions } from "./agent.ts";
import { createHostNetwork, type PodNetwork } from "./network.ts";
import { loadedTestPki, testPki } from "../pki/testing.ts";

export const NODE = "node-1";
export const POD_CIDR = "10.88.0.0/24";

export type PodInit = Omit<Partial<PodSpec>, "containers" | "initContainers" | "$typeName"> & {
  containers?: Partial<Container>[];
  initContainers?: Partial<Container>[];
};

/** A pod bound to the test node; one container "app" unless given. */
export function testPod(name: string, spec: PodInit = {}): Pod {
  return create(PodSchema, {
    metadata: { name, namespace: "default" },
    spec: {
      nodeName: NODE,
      ...spec,
      containers: (spec.containers ?? [{ name: "app" }]).map((c) => ({ image: "busybox:1.36", ...c })),
      initContainers: (spec.initContainers ?? []).map((c) => ({ image: "busybox:1.36", ...c })),
    } as any,
  });
}

/** Polls until fn returns something truthy; fails with the last value seen. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Harness {
  server: ApiServer;
  transport: Transport;
  runtime: FakeRuntime;
  network: PodNetwork;
  agent: Agent;
  rootDir: string;
  pods: ResourceClient<Pod>;
  nodes: ResourceClient<Node>;
  leases: ResourceClient<Lease>;
  /** RPCs made by the agent, by "Service/Method" (e.g. "PodService/UpdateStatus"). */
  calls: Map<string, number>;
  count(method: string): number;
  /** Stops the agent and starts a new one on the same runtime, network and root dir. */
  restartAgent(): Promise<void>;
  createPod(name: string, spec?: PodInit): Promise<Pod>;
  getPod(name: string): Promise<Pod>;
  /** Waits until the pod's status satisfies the predicate; returns the pod. */
  waitForPod(name: string, what: string, pred: (p: Pod) => boolean, timeoutMs?: number): Promise<Pod>;
  containersOf(pod: Pod, name?: string): Promise<ContainerInfo[]>;
  close(): Promise<void>;
}

export async function startHarness(opts: Partial<AgentOptions> = {}): Promise<Harness> {
  const pki = await testPki();
  const server = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, heartbeatMs: 200, kubeletClient: pki.kubeletClient });
  const calls = new Map<string, number>();
  const counter: Interceptor = (next) => async (req) => {
    const key = `${req.service.typeName.split(".").pop()}/${req.method.name}`;
    calls.set(key, (calls.get(key) ?? 0) + 1);
    return next(req);
  };
  const transport = createGrpcTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: server.url, interceptors: [counter] });
  const clientTransport = createGrpcTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: server.url });
  const rootDir = await mkdtemp(join(tmpdir(), "skiff-agent-"));
  const resolvConf = join(rootDir, "host-resolv.conf");
  await writeFile(resolvConf, "nameserver 192.0.2.53\n");
  const runtime = (opts.runtime as FakeRuntime | undefined) ?? createFakeRuntime();
  const agentTls = await pki.agentServing(NODE);
  const network = opts.network ?? createHostNetwork({ podCidr: POD_CIDR, stateDir: join(rootDir, "network") });
  const options = (): AgentOptions => ({
    transport,
    nodeName: NODE,
    runtime,
    network,
    rootDir,
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    tls: agentTls,
    heartbeatMs: 100,
    statusRefreshMs: 1000,
    resyncMs: 200,
    podCidr: POD_CIDR,
    crashLoopBackoff: { initialMs: 200, maxMs: 5000, resetMs: 600_000 },
    imagePullBackoff: { initialMs: 400, maxMs: 5000 },
    probeSecondMs: 50,
    logPollMs: 20,
    resolvConfPath: resolvConf,
    ...opts,
  });
  const pods = createResourceClient<Pod>(clientTransport, "Pod");
  const h: Harness = {
    server,
    transport,
    runtime,
    network,
    agent: createAgent(options()),
    rootDir,
    pods,
    nodes: createResourceClient<Node>(clientTransport, "Node"),
    leases: createResourceClient<Lease>(clientTransport, "Lease"),
    calls,
    count: (m) => calls.get(m) ?? 0,
    async restartAgent() {
      await h.agent.stop();
      h.agent = createAgent(options());
      await h.agent.start();
    },
    createPod: (name, spec) => pods.create(testPod(name, spec)),
    getPod: (name) => pods.get("default", name),
    waitForPod: (name, what, pred, timeoutMs) =>
      waitFor(`pod ${name}: ${what}`, async () => {
        const p = await pods.get("default", name);
        return pred(p) ? p : undefined;
      }, timeoutMs),
    async containersOf(pod, name) {
      return (await runtime.listContainers())
        .filter((c) => c.podUid === pod.metadata!.uid && (name === undefined || c.containerName === name))
        .sort((a, b) => a.attempt - b.attempt);
    },
    async close() {
      await h.agent.stop();
      await server.close();
      await rm(rootDir, { recursive: true, force: true });
    },
  };
  await h.agent.start();
  return h;
}

/** The status of one container (app containers, else init containers). */
export function cstatus(p: Pod, name = "app") {
  return p.status?.containerStatuses.find((c) => c.name === name) ?? p.status?.initContainerStatuses.find((c) => c.name === name);
}

export function cond(p: Pod, type: string): string | undefined {
  return p.status?.conditions.find((c) => c.type === type)?.status;
}
