// The agent's Node object: registered at start (created, or updated when it exists), its status
// (capacity, addresses, nodeInfo, conditions, images, the agent's port) re-written every
// statusRefreshMs, or sooner when something other than a heartbeat time changed — compared with
// the Node as last seen on a watch of it, so that a status someone else wrote (the node lifecycle
// controller's Unknown) is corrected at the next heartbeat.
import { create, equals } from "@bufbuild/protobuf";
import { cloneMessage } from "../api/codec/index.ts";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ConditionSchema, type Condition } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { NodeSchema, NodeSpecSchema, NodeStatusSchema, type Node, type NodeStatus } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Logger } from "../log/log.ts";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import type { NodePressure } from "./eviction/manager.ts";
import type { HostInfo } from "./host-info.ts";

export const LABEL_HOSTNAME = "kubernetes.io/hostname";
export const LABEL_OS = "kubernetes.io/os";
export const LABEL_ARCH = "kubernetes.io/arch";
export const AGENT_VERSION = "skiff-v0.1.0";
/** Images listed in the node status, largest first (Kubernetes lists 50). */
const MAX_IMAGES = 50;

export interface NodeFacts {
  info: HostInfo;
  capacity: Record<string, string>;
  /** The agent's own port (logs), published as daemonEndpoints.kubeletEndpoint.port. */
  daemonPort: number;
}

export interface NodeReporterOptions {
  client: ResourceClient<Node>;
  nodeName: string;
  runtime: ContainerRuntime;
  facts: NodeFacts;
  podCidr?: string;
  /** Annotations the Node gets when this agent creates it (a joined node's identity record). */
  registrationAnnotations?: Record<string, string>;
  statusRefreshMs: number;
  log: Logger;
  /** The eviction manager's view: MemoryPressure / DiskPressure with their messages. */
  pressure?: () => NodePressure;
  /** Annotations the agent keeps on its Node (the local-path directory). */
  annotations?: Record<string, string>;
}

export interface NodeReporter {
  /** Creates the Node or brings its labels and pod CIDR up to date, then writes its status. */
  register(): Promise<Node>;
  /** Writes the status if it changed, or if statusRefreshMs passed since the last write. */
  refresh(): Promise<void>;
  /** The Node as last stored (for the Lease's owner reference). */
  current(): Node | undefined;
  /**
   * The Node as the apiserver has it now (a watch of this node's own object): a status someone
   * else wrote — the node lifecycle controller's Unknown while the node was cut off, an older one
   * from a restored backup — is what the next refresh compares with, and writes over if it
   * differs. Kubernetes' kubelet reads its Node before each status check for the same reason.
   */
  observe(n: Node): void;
}

function condition(old: Condition[], type: string, status: string, reason: string, message: string, now: Date): Condition {
  const prev = old.find((c) => c.type === type);
  const t = timestampFromDate(now);
  return create(ConditionSchema, {
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: t,
    lastTransitionTime: prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : t,
  });
}

export async function computeNodeStatus(
  old: NodeStatus | undefined,
  facts: NodeFacts,
  runtime: ContainerRuntime,
  now: Date,
  pressure: NodePressure = {},
): Promise<NodeStatus> {
  const prev = old?.conditions ?? [];
  let runtimeVersion = "";
  let runtimeError = "";
  let images: { names: string[]; sizeBytes: bigint }[] = [];
  try {
    const v = await runtime.version();
    runtimeVersion = `${v.name}://${v.version}`;
    const list = await runtime.listImages();
    images = list
      .sort((a, b) => b.sizeBytes - a.sizeBytes)
      .slice(0, MAX_IMAGES)
      .map((i) => ({ names: i.names, sizeBytes: BigInt(i.sizeBytes) }));
  } catch (err) {
    runtimeError = err instanceof Error ? err.message : String(err);
  }
  const ready = runtimeError === ""
    ? condition(prev, "Ready", "True", "KubeletReady", "skiff agent is posting ready status", now)
    : condition(prev, "Ready", "False", "ContainerRuntimeNotReady", `container runtime is down: ${runtimeError}`, now);
  const i = facts.info;
  return create(NodeStatusSchema, {
    capacity: facts.capacity,
    allocatable: facts.capacity,
    conditions: [
      pressure.MemoryPressure
        ? condition(prev, "MemoryPressure", "True", "KubeletHasInsufficientMemory", pressure.MemoryPressure, now)
        : condition(prev, "MemoryPressure", "False", "KubeletHasSufficientMemory", "skiff agent has sufficient memory available", now),
      pressure.DiskPressure
        ? condition(prev, "DiskPressure", "True", "KubeletHasDiskPressure", pressure.DiskPressure, now)
        : condition(prev, "DiskPressure", "False", "KubeletHasNoDiskPressure", "skiff agent has no disk pressure", now),
      condition(prev, "PIDPressure", "False", "KubeletHasSufficientPID", "skiff agent has sufficient PID available", now),
      ready,
    ],
    addresses: [
      { type: "InternalIP", address: i.internalIP },
      { type: "Hostname", address: i.hostname },
    ],
    nodeInfo: {
      machineId: i.machineId,
      bootId: i.bootId,
      kernelVersion: i.kernelVersion,
      osImage: i.osImage,
      containerRuntimeVersion: runtimeVersion || (old?.nodeInfo?.containerRuntimeVersion ?? ""),
      kubeletVersion: AGENT_VERSION,
      operatingSystem: i.operatingSystem,
      architecture: i.architecture,
    },
    daemonEndpoints: { kubeletEndpoint: { port: facts.daemonPort } },
    images: runtimeError === "" ? images : (old?.images ?? []),
  });
}

/** The status without heartbeat times: what "changed" means between refreshes. */
function withoutHeartbeats(s: NodeStatus | undefined): NodeStatus {
  // Shallow copies for a comparison: a deep clone of the status (images and all) at every
  // heartbeat of every node cost more than the comparison itself.
  if (!s) return create(NodeStatusSchema);
  return { ...s, conditions: s.conditions.map((c) => ({ ...c, lastHeartbeatTime: undefined })) };
}

export function createNodeReporter(opts: NodeReporterOptions): NodeReporter {
  const { client, nodeName, log } = opts;
  let node: Node | undefined;
  let lastWrite = 0;

  function wantedLabels(): Record<string, string> {
    return { [LABEL_HOSTNAME]: nodeName, [LABEL_OS]: opts.facts.info.operatingSystem, [LABEL_ARCH]: opts.facts.info.architecture };
  }

  async function upsert(): Promise<Node> {
    for (;;) {
      let cur: Node | undefined;
      try {
        cur = await client.get("", nodeName);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
      if (!cur) {
        const fresh = create(NodeSchema, {
          metadata: { name: nodeName, labels: wantedLabels(), annotations: { ...opts.registrationAnnotations, ...opts.annotations } },
          spec: { podCidr: opts.podCidr ?? "", podCidrs: opts.podCidr ? [opts.podCidr] : [] },
        });
        try {
          log.info({ node: nodeName }, "registering node");
          return await client.create(fresh);
        } catch (err) {
          if (ConnectError.from(err).code === Code.AlreadyExists) continue;
          throw err;
        }
      }
      const next = cloneMessage(NodeSchema, cur);
      next.metadata!.labels = { ...next.metadata!.labels, ...wantedLabels() };
      next.metadata!.annotations = { ...next.metadata!.annotations, ...opts.annotations };
      next.spec ??= create(NodeSpecSchema);
      if (opts.podCidr && next.spec.podCidr === "") {
        next.spec.podCidr = opts.podCidr;
        next.spec.podCidrs = [opts.podCidr];
      }
      if (equals(NodeSchema, next, cur)) return cur;
      try {
        return await client.update(next);
      } catch (err) {
        if (ConnectError.from(err).code === Code.Aborted) continue;
        throw err;
      }
    }
  }

  async function writeStatus(force: boolean): Promise<void> {
    if (!node) node = await upsert();
    const status = await computeNodeStatus(node.status, opts.facts, opts.runtime, new Date(), opts.pressure?.());
    const due = Date.now() - lastWrite >= opts.statusRefreshMs;
    if (!force && !due && equals(NodeStatusSchema, withoutHeartbeats(status), withoutHeartbeats(node.status))) return;
    // The request is only encoded: a shallow copy with the new status will do.
    const next: Node = { ...node, status, metadata: { ...node.metadata!, resourceVersion: "" } }; // the agent owns its node's status: last write wins
    try {
      node = await client.updateStatus(next);
      lastWrite = Date.now();
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) {
        // Someone deleted the Node: register again, like the kubelet does.
        log.warn({ node: nodeName }, "node object was deleted; registering again");
        node = undefined;
        node = await upsert();
        return writeStatus(true);
      }
      throw err;
    }
  }

  return {
    async register() {
      node = await upsert();
      await writeStatus(true);
      return node!;
    },
    refresh: () => writeStatus(false),
    current: () => node,
    observe(n) {
      if (!node || n.metadata?.name !== nodeName) return;
      // Only a newer version: an event of an older write must not undo a newer one of ours.
      const seen = Number(node.metadata?.resourceVersion || 0);
      const got = Number(n.metadata?.resourceVersion || 0);
      if (Number.isFinite(seen) && Number.isFinite(got) && got <= seen) return;
      node = n;
    },
  };
}
