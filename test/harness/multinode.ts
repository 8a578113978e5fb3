// Several real nodes on one machine, for tests of what crosses nodes (pod networking, services,
// DNS). The layout:
//
//   host netns:  bridge <run> (10.232.R.1/24)  ── apiserver on 10.232.R.1:<port>, etcd on loopback,
//      │                                          one containerd (a containerd namespace per node)
//      ├─ veth <run>n1 ── netns <run>-n1: eth0 10.232.R.11/24, default via .1
//      │                    `skiff agent` (child process) · bridge <run>-n1 · pods 10.233.P+1.0/24
//      ├─ veth <run>n2 ── netns <run>-n2: eth0 10.232.R.12/24 … pods 10.233.P+2.0/24
//      └─ …                                       cluster CIDR 10.233.P.0/20
//
// Each node also has `unreachable <cluster CIDR>`: pod traffic to a node it has no route for
// (deleted, not yet known) is refused in the node rather than sent on through the host.
//
// Every node joins as a new machine does (`skiff agent --server URL --token K10…` with an
// agent-role token made here): it checks the CA against the token's hash, sends CSRs and runs on
// the node certificates the apiserver signs (kept under <root-dir>/agent). No test hands an agent
// credentials.
//
// Each agent runs as `nsenter --net=<node netns> node cmd/skiff.ts agent …`, so every `ip`, CNI
// and iptables call it makes (pod bridge, routes, NAT) lands in its node's network namespace.
// Not `ip netns exec`: that also gives the agent a mount namespace whose mounts do not propagate
// back, so the pod netns it creates (bind mounts under /var/run/netns) would be invisible to
// containerd, which runs in the host's. Pod netns are named `<run>-n<i>-<pod uid>`.
//
// Names are test/network/leftovers.ts run names ("sk-t<pid><rand>"): a crashed run's netns (its
// nodes' and pods'), bridge and veths are swept by sweepCrashedRuns() at the next start; routes
// and NAT rules live inside the node netns and go with them; agents are guarded child processes
// (they get SIGTERM when the test process dies); containerd and its containers are swept by
// startContainerd(); temp dirs by makeTempDir().
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { randomInt } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { run, runChecked, type RunResult } from "../../internal/network/exec.ts";
import { createNetns } from "../../internal/network/netns.ts";
import { ROUTE_PROTO, type RouteEntry } from "../../internal/network/routes.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/index.ts";
import { createScheduler, type Scheduler } from "../../internal/scheduler/scheduler.ts";
import { startCliAgent, type CliAgent } from "../agent/cli-agent.ts";
import type { PodInit } from "../agent/cluster.ts";
import { removeRun, runName, sweepCrashedRuns } from "../network/leftovers.ts";
import { startContainerd, type ContainerdServer } from "./containerd.ts";
import { freeHostSubnet } from "./host-subnet.ts";
import { startControlPlane, type ControlPlane } from "./control-plane.ts";
import { servingTlsFor, testPki } from "./pki.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { buildBusyboxImage, type BuiltImage } from "./images.ts";
import { makeTempDir, removeTempDir } from "./tmp.ts";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { caHashOf, formatJoinToken, newTokenId, newTokenSecret, TOKEN_NAMESPACE, tokenSecret, type TokenRole } from "../../internal/join/token.ts";

export { waitFor };

/** What /www/index.html of the test image says. */
export const INDEX_HTML = "hello from skiff\n";
/** The port of serverContainer()'s httpd. */
export const SERVER_PORT = 8080;

export interface MultiNodeOptions {
  /** How many nodes (default 2). */
  nodes?: number;
  /** Run the scheduler in the test process (pods without nodeName get placed). Default false. */
  scheduler?: boolean;
  /** Run the controller-manager in the test process (no leader election). Default false. */
  controllers?: boolean;
  /**
   * Agents take the pod CIDR the controller-manager allocates (`--pod-cidr allocated`) instead of
   * one the harness picks; turns on `controllers`. Default: on exactly when `controllers` is (a
   * joining node's Node exists, without a pod CIDR, before its agent registers, and the
   * controller-manager's allocator gives it one then: a CIDR picked here would disagree).
   */
  allocatePodCidrs?: boolean;
  /** Extra flags for every agent (logs: $SKIFF_TEST_AGENT_LOG_LEVEL; kept in $SKIFF_TEST_KEEP_LOGS after stop). */
  agentArgs?: string[];
  /** The lifetime of the node certificates the apiserver signs for joining agents (default one year). */
  nodeCertificateTtlMs?: number;
  /** etcd members (default 1); more make a cluster with peer TLS (cp.etcdCluster). */
  etcdMembers?: number;
}

export interface ClusterNode {
  index: number;
  name: string;
  /** The node's address on the shared bridge (its InternalIP). */
  ip: string;
  /** With allocatePodCidrs: known once the agent has started. */
  podCidr: string;
  /** The node's network namespace. */
  netns: string;
  /** The node's CNI network and pod bridge name; its pods' netns are `<network>-<pod uid>`. */
  network: string;
  containerdNamespace: string;
  rootDir: string;
  /** The running agent, if any. */
  agent: CliAgent | undefined;
  /** The current (or last) agent's log file. */
  logPath: string;
  /** Starts the agent (a fresh log file) and waits until it logs "agent ready". */
  startAgent(): Promise<void>;
  /** SIGTERM: the agent's clean stop. */
  stopAgent(): Promise<void>;
  /** SIGKILL: nothing of the agent's clean-up runs. */
  killAgent(): Promise<void>;
  /** Stop (clean, or SIGKILL with kill: true) and start again. */
  restartAgent(opts?: { kill?: boolean }): Promise<void>;
  /** Runs a host command inside the node's network namespace. */
  exec(cmd: string[]): Promise<RunResult>;
  /** The routes Skiff made in the node (proto ROUTE_PROTO). */
  routes(): Promise<RouteEntry[]>;
  /** The node's containerd runtime (its containerd namespace). */
  runtime: ContainerdRuntime;
}

export interface MultiNodeCluster {
  runName: string;
  dir: string;
  cp: ControlPlane;
  ctrd: ContainerdServer;
  image: BuiltImage;
  /** The agent-role join token every node joined with (`skiff agent --token K10…`). */
  joinToken: string;
  /** The shared host bridge and its address (where the apiserver listens). */
  bridge: string;
  bridgeIP: string;
  clusterCidr: string;
  nodes: ClusterNode[];
  pods: ResourceClient<Pod>;
  nodeObjects: ResourceClient<Node>;
  node(nameOrIndex: string | number): ClusterNode;
  /** Brings up one more node (the next index), its agent ready. */
  addNode(): Promise<ClusterNode>;
  /** A pod running the test image (pull policy Never); bound to `node` unless it is undefined. */
  pod(node: ClusterNode | undefined, name: string, spec?: PodInit): Pod;
  createPod(node: ClusterNode | undefined, name: string, spec?: PodInit): Promise<Pod>;
  waitForPod(name: string, what: string, pred: (p: Pod) => boolean, timeoutMs?: number): Promise<Pod>;
  /** Waits until the pod is Running with an IP and returns it. */
  waitForRunning(name: string, timeoutMs?: number): Promise<Pod>;
  /** Runs a host command in the pod's network namespace (`ip netns exec`): it sends as the pod. */
  execInPod(pod: Pod, cmd: string[]): Promise<RunResult>;
  /** `busybox wget -qO- url` from inside the pod (5 s at most); throws on failure. */
  wgetFromPod(pod: Pod, url: string): Promise<string>;
  /** The client address `server` (running serverContainer()) saw for a request from `client`. */
  sourceSeenBy(server: Pod, client: Pod): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A container that serves the test image's page at `/` and, at `/cgi-bin/ip`, the client address
 * as the server saw it (CGI REMOTE_ADDR), on SERVER_PORT.
 */
export function serverContainer(name = "app") {
  const script = [
    "mkdir -p /tmp/w/cgi-bin",
    "cp /www/index.html /tmp/w/",
    `printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho "$REMOTE_ADDR"\\n' > /tmp/w/cgi-bin/ip`,
    "chmod +x /tmp/w/cgi-bin/ip",
    `exec httpd -f -p ${SERVER_PORT} -h /tmp/w`,
  ].join(" && ");
  return { name, command: ["sh", "-c", script] };
}

/** "10.0.0.5" from the forms servers print an IPv4 client in: "[::ffff:10.0.0.5]", "::ffff:10.0.0.5". */
export function bareIPv4(addr: string): string {
  return addr.replace(/^\[(.*)\]$/, "$1").replace(/^::ffff:/, "");
}

const isNotFound = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

export async function startMultiNode(opts: MultiNodeOptions = {}): Promise<MultiNodeCluster> {
  const count = opts.nodes ?? 2;
  if (opts.controllers && opts.allocatePodCidrs === false) throw new Error("startMultiNode: with controllers, pod CIDRs are allocated (the allocator gives joined Nodes one before their agents register)");
  opts = { ...opts, allocatePodCidrs: opts.allocatePodCidrs ?? !!opts.controllers };
  if (count < 1 || count > 15) throw new Error(`startMultiNode: 1 to 15 nodes, got ${count}`);
  await sweepCrashedRuns();
  const name = runName();
  const dir = makeTempDir("skiff-multinode-");
  const subnet = await freeHostSubnet();
  const bridgeIP = `10.232.${subnet}.1`;
  const block = randomInt(16) * 16;
  const clusterCidr = `10.233.${block}.0/20`;
  const log = pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
    cleanups.length = 0;
  };

  try {
    // The shared segment first: the apiserver listens on it.
    cleanups.push(() => removeRun(name));
    await runChecked("ip", ["link", "add", name, "type", "bridge"]);
    await runChecked("ip", ["addr", "add", `${bridgeIP}/24`, "dev", name]);
    await runChecked("ip", ["link", "set", name, "up"]);

    // The apiserver reads logs from the agents (their TLS flags come from the same test PKI: cli-agent.ts).
    const pki = await testPki();
    // Nodes join as a new machine does: the apiserver signs their certificates with the cluster CA.
    const nodeSigner = { ca: pki.ca, certificateTtlMs: opts.nodeCertificateTtlMs };
    const [cp, ctrd] = await Promise.all([startControlPlane({ host: bridgeIP, tls: await servingTlsFor(pki, [bridgeIP]), nodeSigner }, { etcdMembers: opts.etcdMembers }), startContainerd()]);
    cleanups.push(() => cp.stop(), () => ctrd.stop());
    const image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1", indexHtml: INDEX_HTML });
    const apiURL = cp.server.url;
    const running = new AbortController();
    let scheduler: Scheduler | undefined;
    let controllers: ControllerManager | undefined;
    if (opts.scheduler) {
      scheduler = createScheduler({ transport: createApiTransport(apiURL, pki.credentials(pki.scheduler)), log, backoff: { initialMs: 200, maxMs: 2000 } });
      void scheduler.start(running.signal);
    }
    if (opts.controllers || opts.allocatePodCidrs) {
      controllers = createControllerManager({ transport: createApiTransport(apiURL, pki.credentials(pki.controllerManager)), log, options: { leaderElect: false, config: { clusterCidr } } });
      void controllers.start(running.signal);
    }
    cleanups.push(async () => {
      running.abort();
      await Promise.all([scheduler?.stop(), controllers?.stop()]);
    });

    const joinToken = await createJoinToken(cp, pki.ca.cert, "agent", 3_600_000);
    const nodes: ClusterNode[] = [];
    for (let i = 1; i <= count; i++) nodes.push(await addNode(i));

    async function addNode(i: number): Promise<ClusterNode> {
      const netns = `${name}-n${i}`;
      const ip = `10.232.${subnet}.${10 + i}`;
      const veth = `${name}n${i}`;
      await createNetns(netns);
      await runChecked("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
      await runChecked("ip", ["link", "set", veth, "master", name, "up"]);
      await runChecked("ip", ["-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
      await runChecked("ip", ["-n", netns, "link", "set", "eth0", "up"]);
      await runChecked("ip", ["-n", netns, "route", "add", "default", "via", bridgeIP]);
      // Pod traffic to a pod CIDR the node has no route for stops here instead of following the
      // default route out of the host (tests send traffic only to what they made).
      await runChecked("ip", ["-n", netns, "route", "add", "unreachable", clusterCidr]);
      const rootDir = join(dir, `n${i}`);
      mkdirSync(rootDir, { recursive: true });
      const containerdNamespace = `${ctrd.namespace}-n${i}`;
      const runtime = createContainerdRuntime({ address: ctrd.address, namespace: containerdNamespace });
      cleanups.push(async () => runtime.close());
      let starts = 0;
      // No credentials are handed to the agent: it checks the CA against the token's hash, sends
      // CSRs and keeps the node certificates it gets under --data-dir (internal/join).
      const args = () => [
        "--server", apiURL,
        "--token", joinToken,
        "--data-dir", join(rootDir, "agent"),
        "--node-name", netns,
        "--node-ip", ip,
        "--hostname-override", netns,
        "--listen", `${ip}:10250`,
        "--containerd", ctrd.address,
        "--containerd-namespace", containerdNamespace,
        "--root-dir", rootDir,
        "--pod-cidr", opts.allocatePodCidrs ? "allocated" : `10.233.${block + i}.0/24`,
        "--cluster-cidr", clusterCidr,
        "--cni-network", netns,
        "--cni-bridge", netns,
        "--import-images", image.tarPath,
        "--route-resync", "1s",
        "--log-level", process.env.SKIFF_TEST_AGENT_LOG_LEVEL ?? "info",
        ...(opts.agentArgs ?? []),
      ];
      const node: ClusterNode = {
        index: i,
        name: netns,
        ip,
        podCidr: opts.allocatePodCidrs ? "" : `10.233.${block + i}.0/24`,
        netns,
        network: netns,
        containerdNamespace,
        rootDir,
        agent: undefined,
        logPath: "",
        runtime,
        async startAgent() {
          if (node.agent) throw new Error(`node ${node.name}: agent already running`);
          node.logPath = join(dir, `${netns}-agent-${++starts}.log`);
          node.agent = await startCliAgent(args(), node.logPath, 60_000, { prefix: ["nsenter", `--net=/var/run/netns/${netns}`] });
          if (opts.allocatePodCidrs) node.podCidr = (await cp.client<Node>("Node").get("", netns)).spec?.podCidr ?? "";
        },
        async stopAgent() {
          const a = node.agent;
          node.agent = undefined;
          await a?.stop();
        },
        async killAgent() {
          const a = node.agent;
          node.agent = undefined;
          await a?.kill();
        },
        async restartAgent(o = {}) {
          if (o.kill) await node.killAgent();
          else await node.stopAgent();
          await node.startAgent();
        },
        exec: (cmd) => run("ip", ["netns", "exec", netns, ...cmd]),
        async routes() {
          const r = await runChecked("ip", ["-n", netns, "-j", "-4", "route", "show", "proto", String(ROUTE_PROTO)]);
          return JSON.parse(r.stdout || "[]") as RouteEntry[];
        },
      };
      // Agents first, in reverse: their SIGTERM leaves containers, which containerd's stop kills.
      cleanups.push(() => node.stopAgent());
      await node.startAgent();
      return node;
    }

    const pods = cp.client<Pod>("Pod");
    const c: MultiNodeCluster = {
      runName: name,
      dir,
      joinToken,
      cp,
      ctrd,
      image,
      bridge: name,
      bridgeIP,
      clusterCidr,
      nodes,
      pods,
      nodeObjects: cp.client<Node>("Node"),
      async addNode() {
        const i = nodes.length + 1;
        if (i > 15) throw new Error("startMultiNode: at most 15 nodes");
        const n = await addNode(i);
        nodes.push(n);
        return n;
      },
      node(n) {
        const found = typeof n === "number" ? nodes.find((x) => x.index === n) : nodes.find((x) => x.name === n);
        if (!found) throw new Error(`no node ${n} in this cluster`);
        return found;
      },
      pod(node, podName, spec = {}) {
        const container = (x: Record<string, unknown>) => ({ image: image.ref, imagePullPolicy: x.image ? "" : "Never", ...x });
        return create(PodSchema, {
          metadata: { name: podName, namespace: "default" },
          spec: {
            ...spec,
            ...(node ? { nodeName: node.name } : {}),
            containers: (spec.containers ?? [{ name: "app" }]).map(container),
            initContainers: (spec.initContainers ?? []).map(container),
          } as any,
        });
      },
      createPod: (node, podName, spec) => pods.create(c.pod(node, podName, spec)),
      waitForPod: (podName, what, pred, timeoutMs = 60_000) =>
        waitFor(`pod ${podName}: ${what}`, async () => {
          try {
            const p = await pods.get("default", podName);
            return pred(p) ? p : undefined;
          } catch (err) {
            if (isNotFound(err)) return undefined;
            throw err;
          }
        }, timeoutMs),
      waitForRunning: (podName, timeoutMs) => c.waitForPod(podName, "Running with an IP", (p) => p.status?.phase === "Running" && !!p.status.podIp, timeoutMs),
      async execInPod(pod, cmd) {
        const node = c.node(pod.spec!.nodeName);
        return run("ip", ["netns", "exec", `${node.network}-${pod.metadata!.uid}`, ...cmd]);
      },
      async wgetFromPod(pod, url) {
        const r = await c.execInPod(pod, ["timeout", "5", "busybox", "wget", "-qO-", url]);
        if (r.code !== 0) throw new Error(`wget ${url} from pod ${pod.metadata!.name}: exit ${r.code}: ${r.stderr.trim()}`);
        return r.stdout;
      },
      async sourceSeenBy(server, client) {
        const body = await c.wgetFromPod(client, `http://${server.status!.podIp}:${SERVER_PORT}/cgi-bin/ip`);
        return bareIPv4(body.trim());
      },
      stop: cleanUp,
    };
    // The temp dir goes last (agents' logs are in it; cleanups run in reverse).
    cleanups.unshift(async () => {
      const keep = process.env.SKIFF_TEST_KEEP_LOGS;
      if (keep) {
        mkdirSync(keep, { recursive: true });
        for (const f of readdirSync(dir)) if (f.endsWith(".log")) copyFileSync(join(dir, f), join(keep, f));
      }
      removeTempDir(dir);
    });
    return c;
  } catch (err) {
    await cleanUp();
    removeTempDir(dir);
    throw err;
  }
}

/** A join token (K10…) for `role`, stored through the API as `skiff token create` does; the admin makes it. */
export async function createJoinToken(cp: ControlPlane, caPem: string, role: TokenRole, ttlMs: number | undefined, description = "test"): Promise<string> {
  try {
    await cp.client("Namespace").create(create(NamespaceSchema, { metadata: { name: TOKEN_NAMESPACE } }));
  } catch (err) {
    if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
  }
  const id = newTokenId();
  const secret = newTokenSecret();
  await cp.client("Secret").create(tokenSecret({ id, secret, role, description, expires: ttlMs === undefined ? undefined : new Date(Date.now() + ttlMs) }));
  return formatJoinToken({ caHash: caHashOf(caPem), id, secret });
}

/** The last lines of a node's agent log (for failure messages). */
export function agentLogTail(node: ClusterNode, lines = 30): string {
  if (!node.logPath || !existsSync(node.logPath)) return "";
  return readFileSync(node.logPath, "utf8").split("\n").slice(-lines).join("\n");
}
