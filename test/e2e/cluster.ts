// The end-to-end tests' cluster, composed as `skiff up` composes it (internal/cmd/up.ts): etcd +
// apiserver, the scheduler and the controller-manager (leader-elected) in-process, and a node
// agent on containerd + runc + CNI that imports the example image from a directory of OCI
// tarballs (its importImages option). The node itself comes from test/agent/cluster.ts (unique
// network, bridge, pod CIDR and containerd namespace per run; leftovers of crashed runs swept;
// stop() removes containers, netns, CNI state and the bridge). Tests add hollow nodes (the fake
// runtime, in-process) with addFakeNode and drive the cluster with the real skiffctl.
//
// Timings differ from `skiff up` only where a test would otherwise wait minutes: heartbeats,
// the image rescan, and the node lifecycle's grace period and eviction timeout (5 s each).
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent } from "../../internal/agent/agent.ts";
import { createHostNetwork } from "../../internal/agent/network.ts";
import type { ApiObject } from "../../internal/api/registry.ts";
import { spawnSkiffctl, type CliRun } from "../../internal/cli/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { buildBusyboxImage, type BuiltImage } from "../../internal/images/busybox.ts";
import { createFakeRuntime } from "../../internal/runtime/fake/fake.ts";
import { createScheduler, type Scheduler } from "../../internal/scheduler/scheduler.ts";
import { startCluster, waitFor, type Cluster } from "../agent/cluster.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { createApiTransport } from "../../internal/client/transport.ts";

export { waitFor };

/** The example app's image (deploy/examples/web.yaml), as `skiff up` builds it. */
export const IMAGE_REPO = "skiff.local/busybox-httpd";
export const IMAGE_V1 = `${IMAGE_REPO}:v1`;
export const IMAGE_V2 = `${IMAGE_REPO}:v2`;
/** What each version's /www/index.html says. */
export const PAGE: Record<string, string> = { v1: "<p>web v1</p>\n", v2: "<p>web v2</p>\n" };

export const NODE_MONITOR_GRACE_MS = 5_000;
export const POD_EVICTION_TIMEOUT_MS = 5_000;

const log = pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" });

export interface FakeNode {
  name: string;
  agent: Agent;
  /** Stops the agent (idempotent): the node stops heart-beating. */
  stop(): Promise<void>;
}

export interface E2ECluster {
  /** The real node, its control plane and containerd. */
  node: Cluster;
  scheduler: Scheduler;
  controllers: ControllerManager;
  /** Temp dir of the run: images to import, manifests. */
  dir: string;
  client<T extends ApiObject = any>(kind: string): ResourceClient<T>;
  /** skiffctl (cmd/skiffctl.ts as a child process) against this cluster. */
  skiffctl(...args: string[]): Promise<CliRun>;
  /** skiffctl that must exit 0; returns its stdout. */
  ok(...args: string[]): Promise<string>;
  /** Builds `skiff.local/busybox-httpd:<tag>` serving PAGE[tag] and puts it where the agent imports from. */
  buildImage(tag: string): Promise<BuiltImage>;
  /** Writes a manifest into the run's dir; returns its path. */
  manifest(name: string, yaml: string): string;
  /** Pods of the default namespace matching a label selector. */
  pods(selector: string): Promise<Pod[]>;
  getNode(name: string): Promise<Node>;
  /** A hollow node in-process: the real agent on the fake runtime, fake pod IPs. */
  addFakeNode(name: string, capacity: Record<string, string>): Promise<FakeNode>;
  stop(): Promise<void>;
}

/** Running, Ready and not being deleted: a pod that serves. */
export function serving(p: Pod): boolean {
  return (
    !p.metadata?.deletionTimestamp &&
    p.status?.phase === "Running" &&
    p.status.conditions.some((c) => c.type === "Ready" && c.status === "True")
  );
}

export async function startE2ECluster(): Promise<E2ECluster> {
  const dir = makeTempDir("skiff-e2e-");
  const importDir = join(dir, "images");
  mkdirSync(importDir);
  const fakes: FakeNode[] = [];
  let node: Cluster | undefined;
  let scheduler: Scheduler | undefined;
  let controllers: ControllerManager | undefined;

  // Built elsewhere, then renamed in: the agent never sees a half-written tarball.
  const buildImage = async (tag: string) => {
    const image = await buildBusyboxImage(join(dir, `build-${tag}`), { name: IMAGE_REPO, tag, indexHtml: PAGE[tag] });
    const target = join(importDir, `${tag}.tar`);
    renameSync(image.tarPath, target);
    return { ...image, tarPath: target };
  };

  const stop = async () => {
    for (const f of fakes) await f.stop().catch(() => undefined);
    await controllers?.stop().catch(() => undefined);
    await scheduler?.stop().catch(() => undefined);
    if (node) {
      // The agent's stop waits for the pod kills under way, each up to its pod's grace period
      // (busybox httpd, PID 1, ignores SIGTERM: 30 s by default). SIGKILL the containers meanwhile.
      const agentStopped = node.agent.stop().catch(() => undefined);
      for (const x of await node.runtime.listContainers().catch(() => [])) {
        try {
          if (x.state === "running" && x.pid) process.kill(x.pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await agentStopped;
      await node.stop();
    }
    removeTempDir(dir);
  };

  try {
    await buildImage("v1");
    node = await startCluster({
      agent: { importImages: importDir, importRescanMs: 500, probeSecondMs: 1000 },
    });
    const { pki } = node.cp;
    const as = (pair: { cert: string; key: string }) => createApiTransport(node!.cp.server.url, pki.credentials(pair));
    scheduler = createScheduler({ transport: as(pki.scheduler), log: log.child({ component: "scheduler" }) });
    await scheduler.start();
    controllers = createControllerManager({
      transport: as(pki.controllerManager),
      log: log.child({ component: "controller-manager" }),
      options: {
        drainTimeoutMs: 2_000,
        config: { nodeMonitorGracePeriodMs: NODE_MONITOR_GRACE_MS, podEvictionTimeoutMs: POD_EVICTION_TIMEOUT_MS },
      },
    });
    await controllers.start();
    await waitFor("controller-manager leading and running", () => controllers!.isRunning(), 30_000);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  const n = node;
  const server = n.cp.server.url;
  const skiffctl = (...args: string[]) => spawnSkiffctl(server, args).done;
  return {
    node: n,
    scheduler,
    controllers,
    dir,
    client: (kind) => n.cp.client(kind),
    skiffctl,
    async ok(...args) {
      const r = await skiffctl(...args);
      if (r.code !== 0) throw new Error(`skiffctl ${args.join(" ")}: exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.err}`);
      return r.out;
    },
    buildImage,
    manifest(name, yaml) {
      const path = join(dir, name);
      writeFileSync(path, yaml);
      return path;
    },
    async pods(selector) {
      return (await n.pods.list("default", { labelSelector: selector })).items;
    },
    getNode: (name) => n.cp.client<Node>("Node").get("", name),
    async addFakeNode(name, capacity) {
      const root = join(dir, `node-${name}`);
      const agent = createAgent({
        ...n.agentOptions,
        // Each node under its own identity: the node authorizer lets it write only its own Node and pods.
        transport: createApiTransport(n.cp.server.url, await n.cp.pki.nodeCredentials(name)),
        nodeName: name,
        runtime: createFakeRuntime(),
        // Fake IPs from TEST-NET-2: never routed, never the real node's.
        network: createHostNetwork({ podCidr: "198.51.100.0/24", stateDir: join(root, "network") }),
        podCidr: "198.51.100.0/24",
        rootDir: join(root, "root"),
        importImages: undefined,
        capacity,
        log: log.child({ node: name }),
      });
      let stopped: Promise<void> | undefined;
      const f: FakeNode = { name, agent, stop: () => (stopped ??= agent.stop()) };
      fakes.push(f);
      await agent.start();
      return f;
    },
    stop,
  };
}
