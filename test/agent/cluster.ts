// One node on real parts, for the end-to-end tests of this folder: etcd + apiserver, containerd +
// runc (root, overlayfs), the CNI bridge network in per-pod network namespaces, a busybox-static
// image imported from an OCI layout, and the node agent in-process with short timings (back-offs,
// probe seconds, resync) so that restarts and probes happen in seconds.
//
// Every host-wide name is unique to the run: the CNI network and its bridge (`sk-t<pid><rand>`,
// test/network/leftovers.ts), netns `<network>-<pod uid>`, a free /24 in 10.231.0.0/16, the
// containerd namespace. What a crashed run left (netns, bridge, NAT rules, containerd and its
// containers, temp dirs) is removed before starting; stop() removes what this run made.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { PodSchema, type Container, type Pod, type PodSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { createAgent, type Agent, type AgentOptions } from "../../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../../internal/agent/network.ts";
import { waitFor } from "../../internal/agent/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { run } from "../../internal/network/exec.ts";
import type { ContainerInfo } from "../../internal/runtime/runtime.ts";
import { createContainerdRuntime, type ContainerdRuntime, type ContainerdRuntimeOptions } from "../../internal/runtime/containerd/index.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../network/leftovers.ts";
import { createApiTransport } from "../../internal/client/transport.ts";

export { waitFor };

/** What /www/index.html of the test image says. */
export const INDEX_HTML = "hello from skiff\n";
/** The node's resolv.conf as the agent is told to copy it into pods with dnsPolicy Default. */
export const HOST_RESOLV_CONF = "nameserver 192.0.2.53\nsearch skiff.test\n";

export type ContainerInit = Partial<Omit<Container, "$typeName">>;
export type PodInit = Partial<Omit<PodSpec, "$typeName" | "containers" | "initContainers">> & {
  containers?: ContainerInit[];
  initContainers?: ContainerInit[];
};

export interface Cluster {
  cp: ControlPlane;
  ctrd: ContainerdServer;
  runtime: ContainerdRuntime;
  network: PodNetwork;
  agent: Agent;
  agentOptions: AgentOptions;
  pods: ResourceClient<Pod>;
  image: BuiltImage;
  nodeName: string;
  /** The CNI network's (and its bridge's) name; pod netns are `<name>-<pod uid>`. */
  networkName: string;
  podCidr: string;
  /** Temp dir of the run: image, CNI config and state, the agent's root dir. */
  dir: string;
  rootDir: string;
  /** host-local's leases: one file per allocated IP, named by the IP. */
  ipamDir: string;
  /** A pod bound to this node running the test image (pull policy Never) unless a container names another image. */
  pod(name: string, spec?: PodInit): Pod;
  createPod(name: string, spec?: PodInit): Promise<Pod>;
  getPod(name: string): Promise<Pod | undefined>;
  waitForPod(name: string, what: string, pred: (p: Pod) => boolean, timeoutMs?: number): Promise<Pod>;
  /** Resolves once the pod is gone from the API (NotFound). */
  waitForGone(name: string, timeoutMs?: number): Promise<void>;
  /** The runtime's containers of a pod, oldest attempt first. */
  containersOf(uid: string, container?: string): Promise<ContainerInfo[]>;
  /** The container's log through the agent's log service (followed: until `signal` aborts, each chunk to onData too). */
  logs(pod: string, opts?: { container?: string; previous?: boolean; tailLines?: number; follow?: boolean; signal?: AbortSignal; onData?: (text: string) => void }): Promise<string>;
  /**
   * Stops the agent and starts a new one with the same options (in-process: a clean stop), or
   * with `overrides` applied to them (kept in agentOptions for later restarts).
   */
  restartAgent(overrides?: Partial<AgentOptions>): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** Overrides of the agent's options (timings). */
  agent?: Partial<AgentOptions>;
  /** False: the agent is created but not started (restartAgent starts it), e.g. to bind pods first. */
  startAgent?: boolean;
  /** Options of the containerd runtime (e.g. its container log rotation). */
  runtime?: Partial<ContainerdRuntimeOptions>;
  /** Options of the apiserver (e.g. its Service CIDR). */
  controlPlane?: Parameters<typeof startControlPlane>[0];
}

/** The container's status by name (app containers first, then init containers). */
export function cstatus(p: Pod | undefined, name = "app") {
  return p?.status?.containerStatuses.find((c) => c.name === name) ?? p?.status?.initContainerStatuses.find((c) => c.name === name);
}

export function condition(p: Pod | undefined, type: string): string | undefined {
  return p?.status?.conditions.find((c) => c.type === type)?.status;
}

/** `busybox wget` from the host (to a pod IP), at most 5 s. */
export async function wget(url: string): Promise<string> {
  const r = await run("timeout", ["5", "busybox", "wget", "-qO-", url]);
  if (r.code !== 0) throw new Error(`wget ${url}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const isNotFound = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  await sweepCrashedRuns();
  const networkName = runName();
  const nodeName = `node-${networkName}`;
  const podCidr = await freePodCidr();
  const [cp, ctrd] = await Promise.all([startControlPlane(opts.controlPlane), startContainerd()]);
  const dir = makeTempDir("skiff-agent-e2e-");
  const resolvConfPath = join(dir, "host-resolv.conf");
  writeFileSync(resolvConfPath, HOST_RESOLV_CONF);
  const runtime = createContainerdRuntime({ ...opts.runtime, address: ctrd.address, namespace: ctrd.namespace });
  const image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1", indexHtml: INDEX_HTML });
  await runtime.importImage(image.tarPath);
  const cniState = join(dir, "cni");
  const network = createCniNetwork({
    confDir: join(dir, "net.d"),
    stateDir: cniState,
    network: { name: networkName, bridge: networkName, podCidr },
  });
  const rootDir = join(dir, "root");
  const agentOptions: AgentOptions = {
    // The agent as its node, like `skiff up` runs it.
    transport: createApiTransport(cp.server.url, await cp.pki.nodeCredentials(nodeName)),
    clusterCa: cp.pki.ca.cert,
    nodeName,
    runtime,
    network,
    rootDir,
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    tls: await cp.pki.agentServing(nodeName),
    podCidr,
    resolvConfPath,
    heartbeatMs: 500,
    statusRefreshMs: 2000,
    resyncMs: 500,
    crashLoopBackoff: { initialMs: 200, maxMs: 1000 },
    imagePullBackoff: { initialMs: 1000, maxMs: 4000 },
    probeSecondMs: 200,
    logPollMs: 50,
    ...opts.agent,
  };
  const pods = cp.client<Pod>("Pod");

  const c: Cluster = {
    cp,
    ctrd,
    runtime,
    network,
    agent: createAgent(agentOptions),
    agentOptions,
    pods,
    image,
    nodeName,
    networkName,
    podCidr,
    dir,
    rootDir,
    ipamDir: join(cniState, "networks", networkName),

    pod(name, spec = {}) {
      const container = (x: ContainerInit) => ({ image: image.ref, imagePullPolicy: x.image ? "" : "Never", ...x });
      return create(PodSchema, {
        metadata: { name, namespace: "default" },
        spec: {
          ...spec,
          nodeName,
          containers: (spec.containers ?? [{ name: "app" }]).map(container),
          initContainers: (spec.initContainers ?? []).map(container),
        } as any,
      });
    },
    createPod: (name, spec) => pods.create(c.pod(name, spec)),
    async getPod(name) {
      try {
        return await pods.get("default", name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    waitForPod: (name, what, pred, timeoutMs = 30_000) =>
      waitFor(`pod ${name}: ${what}`, async () => {
        const p = await pods.get("default", name);
        return pred(p) ? p : undefined;
      }, timeoutMs),
    async waitForGone(name, timeoutMs = 30_000) {
      await waitFor(`pod ${name} gone`, async () => (await c.getPod(name)) === undefined, timeoutMs);
    },
    async containersOf(uid, container) {
      return (await runtime.listContainers())
        .filter((x) => x.podUid === uid && (container === undefined || x.containerName === container))
        .sort((a, b) => a.attempt - b.attempt);
    },
    async logs(pod, o = {}) {
      // Through the apiserver, as users read them (it dials the agent over mutual TLS).
      const client = createClient(PodService, cp.transport);
      let out = "";
      const req = { namespace: "default", name: pod, container: o.container ?? "", previous: o.previous ?? false, follow: o.follow ?? false, tailLines: o.tailLines === undefined ? undefined : BigInt(o.tailLines) };
      try {
        for await (const chunk of client.log(req, { signal: o.signal })) {
          const text = Buffer.from(chunk.data).toString();
          out += text;
          o.onData?.(text);
        }
      } catch (err) {
        if (!o.signal?.aborted) throw err;
      }
      return out;
    },
    async restartAgent(overrides = {}) {
      await c.agent.stop();
      c.agentOptions = { ...c.agentOptions, ...overrides };
      c.agent = createAgent(c.agentOptions);
      await c.agent.start();
    },
    async stop() {
      await c.agent.stop().catch(() => undefined);
      // Pods still on the node: their containers, then their network (netns, IP, NAT rules).
      for (const x of await runtime.listContainers().catch(() => [])) {
        await runtime.removeContainer(x.id).catch(() => undefined);
      }
      for (const uid of await network.list().catch(() => [])) await network.tearDown(uid).catch(() => undefined);
      await runtime.close();
      await removeRun(networkName).catch(() => undefined);
      await removeUnusedPortmapChains().catch(() => undefined);
      await ctrd.stop();
      await cp.stop();
      removeTempDir(dir);
    },
  };
  try {
    if (opts.startAgent !== false) await c.agent.start();
  } catch (err) {
    await c.stop().catch(() => undefined);
    throw err;
  }
  return c;
}

/**
 * Every version of pod `name` the apiserver stores from now on, through a Watch (polling can miss
 * a state the agent shows only briefly, e.g. ErrImagePull just before ImagePullBackOff). The watch
 * is established, then `action` runs (typically creating the pod); resolves with the versions seen
 * once `until` says so.
 */
export async function watchPod(
  c: Cluster,
  name: string,
  action: () => Promise<unknown>,
  until: (versions: Pod[]) => boolean,
  timeoutMs = 30_000,
): Promise<Pod[]> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const versions: Pod[] = [];
  const events = c.pods.watch("default", { fieldSelector: `metadata.name=${name}`, resourceVersion: "", signal: stop.signal })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await events.next();
    if (r.done) throw new Error(`watch of pod ${name} ended`);
    return r.value;
  };
  try {
    // The current state (if any) comes first, then a BOOKMARK: from there on the watch is live.
    for (let ev = await next(); ev.type !== "BOOKMARK"; ev = await next()) versions.push(ev.object);
    await action();
    if (until(versions)) return versions;
    for (;;) {
      const ev = await next();
      if (ev.type === "BOOKMARK") continue;
      versions.push(ev.object);
      if (until(versions)) return versions;
    }
  } catch (err) {
    if (!stop.signal.aborted) throw err;
    const states = versions.map((p) => JSON.stringify(cstatus(p)?.state ?? p.status?.phase, (_k, v) => (typeof v === "bigint" ? String(v) : v)));
    throw new Error(`timed out after ${timeoutMs}ms watching pod ${name}; states seen:\n${states.join("\n")}`, { cause: err });
  } finally {
    clearTimeout(timer);
    stop.abort();
    await events.return?.().catch(() => undefined);
  }
}

/** Names of the overlayfs snapshots containerd holds (a container's rootfs is keyed by its id). */
export async function snapshotNames(c: Cluster): Promise<string[]> {
  const names: string[] = [];
  for await (const res of c.runtime.client.snapshots.list({ snapshotter: "overlayfs" })) {
    for (const info of res.info) names.push(info.name);
  }
  return names;
}

/**
 * What the node still holds of a pod: containerd containers, tasks and rootfs snapshots of the
 * given container ids (recorded while the pod ran), any container labelled with the pod's uid,
 * the netns, host-local's IP lease, the pod directory. Empty when all is gone.
 */
export async function leftoversOf(c: Cluster, pod: { uid: string; ip: string; containerIds: string[] }): Promise<string[]> {
  const found: string[] = [];
  const svc = c.runtime.client;
  const exists = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  };
  const snapshots = new Set(await snapshotNames(c));
  for (const id of pod.containerIds) {
    if (await exists(() => svc.containers.get({ id }))) found.push(`container ${id}`);
    if (await exists(() => svc.tasks.get({ containerId: id }))) found.push(`task ${id}`);
    if (snapshots.has(id)) found.push(`snapshot ${id}`);
  }
  for (const x of await c.runtime.listContainers()) if (x.podUid === pod.uid) found.push(`container ${x.id} of the pod`);
  const netns = (await run("ip", ["netns", "list"])).stdout;
  if (netns.includes(`${c.networkName}-${pod.uid}`)) found.push(`netns ${c.networkName}-${pod.uid}`);
  if (existsSync(join(c.ipamDir, pod.ip))) found.push(`IP lease ${pod.ip}`);
  if (existsSync(join(c.rootDir, "pods", pod.uid))) found.push(`pod dir ${pod.uid}`);
  return found;
}

/**
 * The memory limit the kernel enforces on a process's cgroup: cgroup v1 `memory.limit_in_bytes`
 * of the process's memory cgroup (from /proc/<pid>/cgroup), or v2 `memory.max`.
 */
export function memoryLimitOf(pid: number): { path: string; bytes: number } {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n");
  const v1 = lines.map((l) => l.split(":")).find((f) => f.length >= 3 && f[1].split(",").includes("memory"));
  if (v1) {
    const path = join("/sys/fs/cgroup/memory", v1.slice(2).join(":"), "memory.limit_in_bytes");
    return { path, bytes: Number(readFileSync(path, "utf8").trim()) };
  }
  const v2 = lines.find((l) => l.startsWith("0::"));
  if (!v2) throw new Error(`no memory cgroup for pid ${pid}: ${lines.join(" | ")}`);
  const path = join("/sys/fs/cgroup", v2.slice(3), "memory.max");
  return { path, bytes: Number(readFileSync(path, "utf8").trim()) };
}

/** Milliseconds since the epoch of a proto Timestamp, truncated like the runtime's own dates. */
export function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  if (!t) return NaN;
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}
