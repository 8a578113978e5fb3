// The scheduler's cache: NodeInfos kept current from the node and pod informers, plus "assumed"
// pods — pods this scheduler has chosen a node for and is binding. An assumed pod counts on its
// node at once, so the next decision (microseconds later) already sees the node as fuller, long
// before the informer shows the bound pod. The informer's bound copy then replaces it; a failed
// bind forgets it; a successful bind the informer never confirms expires after a TTL.
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Snapshot } from "./core/framework.ts";
import { addPodToNode, newNodeInfo, removePodFromNode, setNode, type NodeInfo, type WorkloadIndex } from "./core/node-info.ts";
import { isTerminal, podInfoOf, workloadKey, type PodInfo } from "./core/pod-info.ts";

export interface SchedulerCache {
  /** The live view for one decision (valid until the next change; do not keep it). */
  snapshot(): Snapshot;
  /** Adds or updates a node: true when it is new or something scheduling reads changed. */
  setNode(node: Node): boolean;
  removeNode(name: string): void;
  /**
   * A bound pod as the informer shows it. Returns true when it freed something others may be
   * waiting for (it turned Succeeded/Failed, or its labels changed).
   */
  upsertPod(pod: Pod): boolean;
  /** The pod is gone (deleted), assumed or not. Returns true when it was counted. */
  removePod(uid: string): boolean;
  assume(pod: PodInfo, nodeName: string): void;
  /** The bind call succeeded: start the TTL for the informer to confirm it. */
  finishBinding(uid: string): void;
  /** The bind failed: stop counting the assumed pod (no-op once the informer has confirmed it). */
  forget(uid: string): boolean;
  isAssumed(uid: string): boolean;
  /** Forgets assumed pods whose binding finished more than ttlMs ago unconfirmed; returns how many. */
  expireAssumed(): number;
  stats(): { nodes: number; pods: number; assumed: number };
}

interface PodState {
  node: string;
  info: PodInfo;
  assumed: boolean;
  /** When an assumed pod's binding finished (0: still binding). */
  boundAt: number;
}

export function createSchedulerCache(opts: { assumeTtlMs?: number; now?: () => number } = {}): SchedulerCache {
  const ttl = opts.assumeTtlMs ?? 30_000;
  const now = opts.now ?? (() => performance.now());
  const nodes = new Map<string, NodeInfo>();
  const pods = new Map<string, PodState>();
  const assumed = new Set<string>();
  const workloads: WorkloadIndex = new Map();
  let list: NodeInfo[] | undefined;
  let withAntiAffinity = 0;

  function nodeInfo(name: string): NodeInfo {
    let info = nodes.get(name);
    if (!info) nodes.set(name, (info = newNodeInfo(name, workloads)));
    return info;
  }

  /** Drops a NodeInfo that has neither a Node nor pods. */
  function prune(name: string): void {
    const info = nodes.get(name);
    if (info && !info.node && info.pods.size === 0) nodes.delete(name);
  }

  function uncount(uid: string): PodState | undefined {
    const state = pods.get(uid);
    if (!state) return undefined;
    pods.delete(uid);
    assumed.delete(uid);
    if (state.info.requiredAntiAffinity.length > 0) withAntiAffinity--;
    const info = nodes.get(state.node);
    if (info) {
      removePodFromNode(info, uid);
      prune(state.node);
    }
    return state;
  }

  function count(uid: string, state: PodState): void {
    pods.set(uid, state);
    if (state.assumed) assumed.add(uid);
    if (state.info.requiredAntiAffinity.length > 0) withAntiAffinity++;
    addPodToNode(nodeInfo(state.node), state.info);
  }

  return {
    snapshot() {
      list ??= [...nodes.values()].filter((n) => n.node !== undefined);
      return { nodes: list, podsWithRequiredAntiAffinity: withAntiAffinity, workloads };
    },
    setNode(node) {
      const name = node.metadata?.name ?? "";
      const info = nodeInfo(name);
      const isNew = info.node === undefined;
      const changed = setNode(info, node);
      if (isNew) list = undefined;
      return isNew || changed;
    },
    removeNode(name) {
      const info = nodes.get(name);
      if (!info) return;
      info.node = undefined;
      info.signature = "";
      list = undefined;
      prune(name);
    },
    upsertPod(pod) {
      const uid = pod.metadata?.uid ?? "";
      const nodeName = pod.spec?.nodeName ?? "";
      const before = pods.get(uid);
      if (nodeName === "" || isTerminal(pod)) {
        // Not (or no longer) holding resources anywhere.
        return uncount(uid) !== undefined;
      }
      // A status write (most updates of a bound pod), or the bound copy of a pod we assumed on
      // that node (a bind changes no generation, labels or owner), changes nothing scheduling
      // reads: the pod stays counted as it is, without recomputing its requests.
      if (before && before.node === nodeName && sameSchedulingInputs(before.info, pod)) {
        if (before.assumed) {
          before.assumed = false;
          before.boundAt = 0;
          assumed.delete(uid);
        }
        return false;
      }
      const info = podInfoOf(pod);
      const labelsChanged = before !== undefined && !before.assumed && !sameLabels(before.info.labels, info.labels);
      uncount(uid);
      count(uid, { node: nodeName, info, assumed: false, boundAt: 0 });
      // An assumed pod confirmed on another node than we chose (someone else bound it) frees ours.
      return labelsChanged || (before !== undefined && before.node !== nodeName);
    },
    removePod(uid) {
      return uncount(uid) !== undefined;
    },
    assume(info, nodeName) {
      uncount(info.uid);
      count(info.uid, { node: nodeName, info, assumed: true, boundAt: 0 });
    },
    finishBinding(uid) {
      const state = pods.get(uid);
      if (state?.assumed) state.boundAt = now();
    },
    forget(uid) {
      if (!pods.get(uid)?.assumed) return false;
      uncount(uid);
      return true;
    },
    isAssumed: (uid) => assumed.has(uid),
    expireAssumed() {
      const t = now();
      let n = 0;
      for (const uid of [...assumed]) {
        const state = pods.get(uid)!;
        if (state.boundAt > 0 && t - state.boundAt > ttl) {
          uncount(uid);
          n++;
        }
      }
      return n;
    },
    stats: () => ({ nodes: nodes.size, pods: pods.size, assumed: assumed.size }),
  };
}

/**
 * Spec, labels and owner are what a counted pod's PodInfo is made of. The apiserver bumps
 * metadata.generation on every spec change (a pod without one, never stored, is recomputed).
 * Runs for every status write of every bound pod: owners are compared as they are, and the
 * workload key (a string to build and intern) only computed when they differ.
 */
function sameSchedulingInputs(info: PodInfo, pod: Pod): boolean {
  const generation = pod.metadata?.generation ?? 0n;
  return (
    info.pod === pod ||
    (generation > 0n &&
      info.pod.metadata?.generation === generation &&
      sameLabels(info.labels, pod.metadata?.labels ?? {}) &&
      (sameOwners(info.pod, pod) || info.workload === workloadKey(pod)))
  );
}

/** Same owner references (what a workload key is made of, with labels and namespace). */
function sameOwners(a: Pod, b: Pod): boolean {
  const ra = a.metadata?.ownerReferences ?? [];
  const rb = b.metadata?.ownerReferences ?? [];
  if (ra.length !== rb.length) return false;
  for (let i = 0; i < ra.length; i++) {
    const x = ra[i];
    const y = rb[i];
    if (x.uid !== y.uid || x.kind !== y.kind || x.name !== y.name || x.controller !== y.controller) return false;
  }
  return true;
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}
