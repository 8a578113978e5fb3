// The node lifecycle controller (Kubernetes' node lifecycle controller + taint manager + range
// allocator in one reconcile per node):
//
//   Lease renewTime changed ─┐ (local clock noted: probeAt; reconciled only when the node was
//   Ready heartbeat changed ─┼─► reconcile(node)  not Healthy: a healthy node's requeue at its
//                            │                    staleness deadline finds the newer probeAt)
//   Node / pod changes ──────┘      │
//        ├─ no pod CIDR ───────────► allocate the next free range ─┐
//        ├─ now - probeAt > grace ─► conditions Unknown (UpdateStatus), pods Ready=False
//        ├─ taints = f(health) ─────────────────────────────────────┴─► Update (one write)
//        └─ NoExecute taint ──────► each pod: deadline = timeAdded + toleration ─► Delete
//                                   unreachable + past its deletion grace ─► Delete(grace 0)
//
// Health is judged by the local clock at the moment a heartbeat was seen to change, never by
// comparing the agent's timestamps with ours (clock skew). A freshly started controller counts
// every node as just heard from, as Kubernetes does.
import { create } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { timestampMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Lease } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { ConditionSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { NodeSchema, NodeSpecSchema, NodeStatusSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { NODE_LEASE_NAMESPACE } from "../../agent/lease.ts";
import type { Informer } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";
import { createCidrAllocator, type CidrAllocator } from "./cidr.ts";
import { evictionDeadline, evictionTaint, readyCondition, reconcileConditionTaints, reconcileTaints, type NodeHealth } from "./taints.ts";

export interface NodeLifecycleOptions {
  /** A node whose heartbeat has not changed for this long is Unknown and tainted unreachable. Default 40 s. */
  nodeMonitorGracePeriodMs: number;
  /** Pods without a toleration for the NoExecute taint are evicted this long after it was added. Default 5 min. */
  podEvictionTimeoutMs: number;
  /** Pod network cut into node ranges; "" turns allocation off. Default 10.244.0.0/16. */
  clusterCidr: string;
  /** Prefix length of a node's range. Default 24. */
  nodeCidrMaskSize: number;
  /**
   * Pods on an unreachable node that are past their deletion grace period are deleted with grace
   * period 0 (their agent cannot confirm), so that their controllers replace them. Default true.
   */
  forceDeleteOnUnreachable: boolean;
  workers: number;
}

export const defaultNodeLifecycleOptions: Readonly<NodeLifecycleOptions> = Object.freeze({
  nodeMonitorGracePeriodMs: 40_000,
  podEvictionTimeoutMs: 300_000,
  clusterCidr: "10.244.0.0/16",
  nodeCidrMaskSize: 24,
  forceDeleteOnUnreachable: true,
  workers: 2,
});

const POD_NODE_INDEX = "node-lifecycle:nodeName";

interface Heartbeat {
  /** The lease's renewTime and the Ready condition's lastHeartbeatTime, as last seen. */
  lease?: string;
  status?: string;
  /** performance.now() when either last changed (or the node was first seen). */
  probeAt: number;
  /** A heartbeat changed while we watched: the agent is alive (whatever Ready still says). */
  alive: boolean;
  /** The health the last reconcile judged (undefined before the first). */
  judged?: NodeHealth;
}

function ensureIndex<T extends Pod>(inf: Informer<T>, name: string, fn: (o: T) => string[]): void {
  try {
    inf.indexKeys(name, "");
  } catch {
    inf.addIndexers({ [name]: fn });
  }
}

const tsKey = (t: { seconds: bigint; nanos: number } | undefined) => (t ? `${t.seconds}.${t.nanos}` : "");
const isNotFound = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

function fromContext(ctx: ControllerContext): Partial<NodeLifecycleOptions> {
  const o = ctx.options ?? {};
  return {
    nodeMonitorGracePeriodMs: o.nodeMonitorGracePeriodMs,
    podEvictionTimeoutMs: o.podEvictionTimeoutMs,
    clusterCidr: o.clusterCidr,
    nodeCidrMaskSize: o.nodeCidrMaskSize,
    workers: o.concurrentSyncs,
  };
}

function withDefaults<T extends object>(defaults: T, ...layers: Partial<T>[]): T {
  const out = { ...defaults };
  for (const l of layers) for (const [k, v] of Object.entries(l)) if (v !== undefined) (out as any)[k] = v;
  return out;
}

export function createNodeLifecycleController(ctx: ControllerContext, overrides: Partial<NodeLifecycleOptions> = {}): Controller {
  const opts = withDefaults(defaultNodeLifecycleOptions, fromContext(ctx), overrides);
  const log = ctx.log;
  const nodes = ctx.informers.informerFor<Node>("Node");
  const leases = ctx.informers.informerFor<Lease>("Lease");
  const pods = ctx.informers.informerFor<Pod>("Pod");
  const nodeClient = createResourceClient<Node>(ctx.transport, "Node");
  const podClient = createResourceClient<Pod>(ctx.transport, "Pod");
  ensureIndex(pods, POD_NODE_INDEX, (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []));

  const cidrs: CidrAllocator | undefined = opts.clusterCidr
    ? createCidrAllocator({ clusterCidr: opts.clusterCidr, nodeMaskSize: opts.nodeCidrMaskSize })
    : undefined;
  const heartbeats = new Map<string, Heartbeat>();

  /** Notes a heartbeat; true when a reconcile could now judge the node differently. */
  function heard(node: string, what: "lease" | "status", value: string): boolean {
    const h = heartbeats.get(node);
    if (!h) {
      heartbeats.set(node, { [what]: value, probeAt: performance.now(), alive: false });
      return true;
    }
    if (h[what] === undefined) h[what] = value;
    else if (h[what] !== value) {
      h[what] = value;
      h.probeAt = performance.now();
      h.alive = true;
    }
    return h.judged !== "Healthy";
  }

  function healthOf(node: Node): { health: NodeHealth; staleInMs: number } {
    const h = heartbeats.get(node.metadata!.name);
    const age = h ? performance.now() - h.probeAt : 0;
    if (age >= opts.nodeMonitorGracePeriodMs) return { health: "Unreachable", staleInMs: Infinity };
    const staleInMs = opts.nodeMonitorGracePeriodMs - age;
    const ready = readyCondition(node)?.status;
    // Unknown from before we started (a controller restart): unreachable until a heartbeat moves,
    // so that a restart neither lifts the taints nor restarts the eviction clocks.
    if (ready === "Unknown" && !h?.alive) return { health: "Unreachable", staleInMs };
    return { health: ready === "False" ? "NotReady" : "Healthy", staleInMs };
  }

  const offs: (() => void)[] = [];
  const controller = createController({ name: "node-lifecycle", log, workers: opts.workers, reconcile });

  const onNode = (n: Node) => {
    const name = n.metadata!.name;
    heard(name, "status", tsKey(readyCondition(n)?.lastHeartbeatTime));
    if (cidrs && n.spec) {
      const clashes = cidrs.observe(name, n.spec.podCidrs.length ? n.spec.podCidrs : n.spec.podCidr ? [n.spec.podCidr] : []);
      if (clashes.length) log.warn({ node: name, clashes }, "node pod CIDR overlaps another node's");
    }
    controller.enqueue(name);
  };
  const onLease = (l: Lease) => {
    if (l.metadata?.namespace !== NODE_LEASE_NAMESPACE) return;
    // A renewal of a node judged Healthy changes nothing a reconcile would write: its staleness
    // deadline (requeueAfter) is re-checked against the newer probeAt when it comes. Reconciling
    // on every renewal was 50 reconciles (and requeue timers) a second for 500 idle nodes.
    if (heard(l.metadata.name, "lease", tsKey(l.spec?.renewTime))) controller.enqueue(l.metadata.name);
  };
  const onPod = (p: Pod) => {
    const n = p.spec?.nodeName ? nodes.get(p.spec.nodeName) : undefined;
    // Only pods on a tainted node have anything to wait for here.
    if (n && evictionTaint(n)) controller.enqueue(n.metadata!.name);
  };
  offs.push(
    nodes.onAdd(onNode),
    nodes.onUpdate((_o, n) => onNode(n)),
    nodes.onDelete((n) => {
      heartbeats.delete(n.metadata!.name);
      if (!cidrs) return;
      cidrs.release(n.metadata!.name);
      // A range came free: nodes still waiting for one try again.
      for (const w of nodes.list()) if (!w.spec?.podCidr && !w.spec?.podCidrs.length) controller.enqueue(w.metadata!.name);
    }),
    leases.onAdd(onLease),
    leases.onUpdate((_o, l) => onLease(l)),
    pods.onAdd(onPod),
    pods.onUpdate((_o, p) => onPod(p)),
  );

  /** Marks every condition Unknown, as Kubernetes does for a node that went silent. */
  async function markUnknown(node: Node): Promise<Node> {
    const next = cloneMessage(NodeSchema, node);
    const status = (next.status ??= create(NodeStatusSchema));
    const now = timestampNow();
    if (!status.conditions.some((c) => c.type === "Ready")) {
      status.conditions.push(create(ConditionSchema, { type: "Ready", status: "Unknown", reason: "NodeStatusNeverUpdated", message: "Kubelet never posted node status.", lastTransitionTime: now, lastProbeTime: now }));
    }
    for (const c of status.conditions) {
      if (c.status === "Unknown") continue;
      c.status = "Unknown";
      c.reason = "NodeStatusUnknown";
      c.message = "Kubelet stopped posting node status.";
      c.lastTransitionTime = now;
      c.lastProbeTime = now;
      // lastHeartbeatTime stays: it is the agent's, and a change would count as a heartbeat.
    }
    log.info({ node: node.metadata!.name }, "node stopped posting status: marked Unknown");
    ctx.recorder.event(node, "Normal", "NodeNotReady", `Node ${node.metadata!.name} status is now: NodeNotReady`);
    return nodeClient.updateStatus(next);
  }

  /** Pods on a silent node are no longer Ready, so Services stop sending them traffic. */
  async function markPodsNotReady(podsOnNode: Pod[]): Promise<void> {
    for (const p of podsOnNode) {
      if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") continue;
      const ready = p.status?.conditions.find((c) => c.type === "Ready");
      if (!ready || ready.status !== "True") continue;
      const next = cloneMessage(PodSchema, p);
      const c = next.status!.conditions.find((x) => x.type === "Ready")!;
      c.status = "False";
      c.reason = "NodeNotReady";
      c.message = "Node is not ready";
      c.lastTransitionTime = timestampNow();
      try {
        await podClient.updateStatus(next);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  async function reconcile(name: string): Promise<Result> {
    const cached = nodes.get(name);
    if (!cached) {
      // A deleted node, or a lease that is not a node's (leader election): nothing to remember.
      heartbeats.delete(name);
      return;
    }
    let node = cached;
    const waits: number[] = [];
    const { health, staleInMs } = healthOf(node);
    if (Number.isFinite(staleInMs)) waits.push(staleInMs);
    // Noted before any await: a renewal arriving while this runs must see an unhealthy verdict.
    const h = heartbeats.get(name);
    if (h) h.judged = health;

    const conditions = node.status?.conditions ?? [];
    if (health === "Unreachable" && (!readyCondition(node) || conditions.some((c) => c.status !== "Unknown"))) {
      node = await markUnknown(node);
    }

    // One spec write for the pod CIDR and the taints.
    const spec = node.spec ?? create(NodeSpecSchema);
    let podCidr: string | undefined;
    if (cidrs && spec.podCidr === "" && spec.podCidrs.length === 0) {
      podCidr = cidrs.allocate(name);
      if (!podCidr) {
        ctx.recorder.event(node, "Warning", "CIDRNotAvailable", `Node ${name}: no pod CIDR left in ${cidrs.clusterCidr}`);
        waits.push(30_000);
      }
    }
    const now = Date.now();
    const taints = reconcileConditionTaints(reconcileTaints(spec.taints, health, now), node.status?.conditions ?? [], now);
    if (podCidr || taints !== spec.taints) {
      const next = cloneMessage(NodeSchema, node);
      next.spec ??= create(NodeSpecSchema);
      if (podCidr) {
        next.spec.podCidr = podCidr;
        next.spec.podCidrs = [podCidr];
      }
      next.spec.taints = taints;
      try {
        node = await nodeClient.update(next);
      } catch (err) {
        // The range stays reserved for this node: the retry hands it the same one.
        if (isNotFound(err)) return;
        throw err;
      }
      if (podCidr) {
        log.info({ node: name, podCidr }, "allocated pod CIDR");
        ctx.recorder.event(node, "Normal", "CIDRAssignmentSucceeded", `Node ${name} got pod CIDR ${podCidr}`);
      }
    }

    // Pods only matter on a node that is unreachable or has a NoExecute taint; a healthy node's
    // heartbeat (every Lease renewal lands here) does not walk its pods.
    if (health === "Unreachable" || evictionTaint(node)) {
      const podsOnNode = pods.byIndex(POD_NODE_INDEX, name);
      if (health === "Unreachable") await markPodsNotReady(podsOnNode);
      waits.push(...(await evict(node, health, podsOnNode)));
    }
    const wait = Math.min(...waits);
    return Number.isFinite(wait) ? { requeueAfterMs: Math.max(10, Math.ceil(wait)) } : undefined;
  }

  /** Deletes the pods whose toleration of the NoExecute taint ran out; returns the waits left. */
  async function evict(node: Node, health: NodeHealth, podsOnNode: Pod[]): Promise<number[]> {
    const taint = evictionTaint(node);
    const waits: number[] = [];
    const now = Date.now();
    for (const pod of podsOnNode) {
      const m = pod.metadata!;
      if (m.deletionTimestamp) {
        // Terminating on a node whose agent is gone: nobody will ever confirm it. Once its grace
        // period is over, delete it for good so that its ReplicaSet can replace it.
        if (health !== "Unreachable" || !opts.forceDeleteOnUnreachable) continue;
        const due = timestampMs(m.deletionTimestamp);
        if (due > now) {
          waits.push(due - now);
          continue;
        }
        log.info({ node: node.metadata!.name, pod: `${m.namespace}/${m.name}` }, "force-deleting pod on unreachable node");
        await podClient.delete(m.namespace, m.name, { gracePeriodSeconds: 0n, uid: m.uid }).catch(ignoreGone);
        continue;
      }
      if (!taint) continue;
      const deadline = evictionDeadline(pod, taint, opts.podEvictionTimeoutMs, now);
      if (deadline === Infinity) continue;
      if (deadline > now) {
        waits.push(deadline - now);
        continue;
      }
      log.info({ node: node.metadata!.name, pod: `${m.namespace}/${m.name}`, taint: taint.key }, "evicting pod");
      ctx.recorder.event(pod, "Normal", "TaintManagerEviction", `Marking for deletion Pod ${m.namespace}/${m.name}`);
      const res = await podClient.delete(m.namespace, m.name, { uid: m.uid }).catch(ignoreGone);
      // Deleted gracefully: look again when its grace period is over.
      const ts = res?.object?.metadata?.deletionTimestamp;
      if (ts && health === "Unreachable") waits.push(Math.max(0, timestampMs(ts) - Date.now()));
    }
    return waits;
  }

  return {
    ...controller,
    async stop() {
      for (const off of offs.splice(0)) off();
      await controller.stop();
    },
  };
}

function ignoreGone(err: unknown): undefined {
  const code = ConnectError.from(err).code;
  // NotFound: already gone; Aborted: the uid precondition failed, a new pod took the name.
  if (code === Code.NotFound || code === Code.Aborted) return undefined;
  throw err;
}
