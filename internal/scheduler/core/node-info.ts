// NodeInfo: one node as scheduling sees it — its allocatable resources, effective taints, and
// the running totals of the pods counted on it (requests, host ports, workloads). Totals are
// kept incrementally (add/remove one pod), so no decision ever sums a node's pods.
import type { Node, Taint } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { PodInfo } from "./pod-info.ts";
import { parseResourceList, type ResourceList } from "./resources.ts";

export const TAINT_NOT_READY = "node.kubernetes.io/not-ready";
export const TAINT_UNREACHABLE = "node.kubernetes.io/unreachable";
export const TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable";
export const HOSTNAME_LABEL = "kubernetes.io/hostname";

/** The parts of a taint that matter here (a Taint message fits). */
export interface TaintLike {
  key: string;
  value: string;
  effect: string;
}

// Layout: a decision reads a few numbers of each of hundreds of nodes, so the numbers it reads
// sit on the NodeInfo itself, first. Each further object per node a filter or scorer touches
// (a Map, a totals object) is one more cache miss per node per decision — in a busy process,
// most of the decision's cost.
export interface NodeInfo {
  readonly name: string;
  /** undefined while pods bound to this name are known but the Node itself is not (yet). */
  node: Node | undefined;
  /** Counted pods here (pods.size). */
  podCount: number;
  /** From allocatable "pods"; NO_POD_LIMIT when the node does not say. */
  allocatablePods: number;
  /** requested.cpu (millicores) and requested.memory (bytes), 0 when none. */
  requestedCpu: number;
  requestedMemory: number;
  /** allocatable.cpu and allocatable.memory, 0 when the node does not list them. */
  allocatableCpu: number;
  allocatableMemory: number;
  /** Sums of the counted pods' non-zero requests (cpu milli, memory bytes): scoring only. */
  nonZeroCpu: number;
  nonZeroMemory: number;
  unschedulable: boolean;
  /** spec.taints plus a NoSchedule taint for a node that is not Ready (not-ready / unreachable). */
  taints: readonly TaintLike[];
  labels: Readonly<Record<string, string>>;
  allocatable: ResourceList;
  /** Sums over the counted pods (non-terminal, bound or assumed here). */
  requested: ResourceList;
  pods: Map<string, PodInfo>;
  /** "TCP/8080" → host IP → number of pods using it */
  usedPorts: Map<string, Map<string, number>>;
  /**
   * workload key → node → its pods there, shared by the nodes of one cache or snapshot: a
   * decision scores hundreds of nodes for one workload, and one small map (in cache for all of
   * them) costs less than a lookup in each node's own.
   */
  readonly workloadIndex: WorkloadIndex;
  /** "namespace/key=value" → number of counted pods with that label: speeds up affinity checks. */
  podLabels: Map<string, number>;
  /** Counted pods that carry required anti-affinity terms (checked against every new pod). */
  podsWithAntiAffinity: Set<PodInfo>;
  /** What scheduling read from the node last time, to tell relevant changes from heartbeats. */
  signature: string;
}

export type WorkloadIndex = Map<string, Map<NodeInfo, number>>;

/**
 * allocatablePods of a node that does not report "pods": no limit. A small integer rather than
 * Infinity, so that V8 keeps the field inline in the NodeInfo instead of in a separate box that
 * the filter would read (one more cache miss) for every node.
 */
export const NO_POD_LIMIT = 2 ** 30 - 1;

/** The taints of every node without any: one shared array, not one per node. */
const NO_TAINTS: readonly TaintLike[] = Object.freeze([]);

/** A NodeInfo with nothing counted; nodes of one snapshot share `workloadIndex`. */
export function newNodeInfo(name: string, workloadIndex: WorkloadIndex = new Map()): NodeInfo {
  return {
    name,
    node: undefined,
    podCount: 0,
    allocatablePods: NO_POD_LIMIT,
    requestedCpu: 0,
    requestedMemory: 0,
    allocatableCpu: 0,
    allocatableMemory: 0,
    nonZeroCpu: 0,
    nonZeroMemory: 0,
    unschedulable: false,
    taints: NO_TAINTS,
    labels: {},
    allocatable: {},
    requested: {},
    pods: new Map(),
    usedPorts: new Map(),
    workloadIndex,
    podLabels: new Map(),
    podsWithAntiAffinity: new Set(),
    signature: "",
  };
}

/** The taint a node's Ready condition implies, if any (kube's node lifecycle taints). */
function conditionTaint(node: Node): TaintLike | undefined {
  const ready = node.status?.conditions.find((c) => c.type === "Ready");
  if (ready?.status === "True") return undefined;
  const key = ready?.status === "Unknown" ? TAINT_UNREACHABLE : TAINT_NOT_READY;
  return { key, value: "", effect: "NoSchedule" };
}

function effectiveTaints(node: Node): readonly TaintLike[] {
  const taints: TaintLike[] = [...(node.spec?.taints ?? [])];
  const implied = conditionTaint(node);
  if (implied && !taints.some((t) => t.key === implied.key && t.effect === implied.effect)) taints.push(implied);
  return taints.length > 0 ? taints : NO_TAINTS;
}

/**
 * Points the NodeInfo at a new version of its Node. Returns true when something scheduling
 * reads changed (labels, allocatable, taints, readiness, unschedulable) — not for heartbeats.
 */
export function setNode(info: NodeInfo, node: Node): boolean {
  info.node = node;
  info.labels = node.metadata?.labels ?? {};
  const parsed = parseResourceList(node.status?.allocatable);
  info.allocatablePods = parsed.pods ?? NO_POD_LIMIT;
  // Copied rather than `delete`d: an object that lost a property turns into a hash table, and
  // every filter and score reads allocatable for each node.
  const allocatable: ResourceList = {};
  for (const name in parsed) if (name !== "pods") allocatable[name] = parsed[name];
  info.allocatable = allocatable;
  info.allocatableCpu = allocatable.cpu ?? 0;
  info.allocatableMemory = allocatable.memory ?? 0;
  info.taints = effectiveTaints(node);
  info.unschedulable = node.spec?.unschedulable ?? false;
  const signature = JSON.stringify([
    info.labels,
    node.status?.allocatable ?? {},
    info.taints.map((t: Taint | TaintLike) => [t.key, t.value, t.effect]),
    info.unschedulable,
  ]);
  const changed = signature !== info.signature;
  info.signature = signature;
  return changed;
}

/** The key of NodeInfo.podLabels. */
export const labelPair = (namespace: string, key: string, value: string) => `${namespace}/${key}=${value}`;

const portKey = (protocol: string, port: number) => `${protocol}/${port}`;
const anyIP = (ip: string) => ip === "" || ip === "0.0.0.0" || ip === "::";

/** Whether a host port is taken on this node (0.0.0.0 conflicts with every address). */
export function portInUse(info: NodeInfo, ip: string, protocol: string, port: number): boolean {
  const ips = info.usedPorts.get(portKey(protocol, port));
  if (!ips || ips.size === 0) return false;
  if (anyIP(ip)) return true;
  return ips.has(ip) || ips.has("0.0.0.0");
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/** How many pods of the workload are counted on the node. */
export function workloadCount(info: NodeInfo, workload: string): number {
  return info.workloadIndex.get(workload)?.get(info) ?? 0;
}

function countWorkload(info: NodeInfo, workload: string, by: 1 | -1): void {
  let perNode = info.workloadIndex.get(workload);
  if (!perNode) info.workloadIndex.set(workload, (perNode = new Map()));
  const n = (perNode.get(info) ?? 0) + by;
  if (n > 0) perNode.set(info, n);
  else {
    perNode.delete(info);
    if (perNode.size === 0) info.workloadIndex.delete(workload);
  }
}

function addRequests(info: NodeInfo, p: PodInfo, sign: 1 | -1): void {
  const into = info.requested;
  const from = p.requests;
  for (const name in from) into[name] = (into[name] ?? 0) + sign * from[name];
  info.requestedCpu = into.cpu ?? 0;
  info.requestedMemory = into.memory ?? 0;
  info.nonZeroCpu += sign * p.nonZero.cpu;
  info.nonZeroMemory += sign * p.nonZero.memory;
}

function accountPorts(info: NodeInfo, p: PodInfo, sign: 1 | -1): void {
  for (const hp of p.hostPorts) {
    const key = portKey(hp.protocol, hp.port);
    let ips = info.usedPorts.get(key);
    if (!ips) info.usedPorts.set(key, (ips = new Map()));
    bump(ips, anyIP(hp.ip) ? "0.0.0.0" : hp.ip, sign);
    if (ips.size === 0) info.usedPorts.delete(key);
  }
}

/** Counts a pod on the node (idempotent per uid: a second add replaces the first). */
export function addPodToNode(info: NodeInfo, p: PodInfo): void {
  if (info.pods.has(p.uid)) removePodFromNode(info, p.uid);
  info.pods.set(p.uid, p);
  info.podCount = info.pods.size;
  addRequests(info, p, 1);
  accountPorts(info, p, 1);
  if (p.workload !== undefined) countWorkload(info, p.workload, 1);
  for (const k in p.labels) bump(info.podLabels, labelPair(p.namespace, k, p.labels[k]), 1);
  if (p.requiredAntiAffinity.length > 0) info.podsWithAntiAffinity.add(p);
}

/** Stops counting a pod; false when it was not counted here. */
export function removePodFromNode(info: NodeInfo, uid: string): boolean {
  const p = info.pods.get(uid);
  if (!p) return false;
  info.pods.delete(uid);
  info.podCount = info.pods.size;
  addRequests(info, p, -1);
  accountPorts(info, p, -1);
  if (p.workload !== undefined) countWorkload(info, p.workload, -1);
  for (const k in p.labels) bump(info.podLabels, labelPair(p.namespace, k, p.labels[k]), -1);
  info.podsWithAntiAffinity.delete(p);
  return true;
}

/** The node's value for a topology key; the hostname key falls back to the node's name. */
export function topologyValue(info: NodeInfo, key: string): string | undefined {
  const v = info.labels[key];
  if (v !== undefined) return v;
  return key === HOSTNAME_LABEL ? info.name : undefined;
}
