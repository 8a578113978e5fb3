// The plugin shapes: feasibility (filters) and ranking (scorers) as small composable steps.
// A plugin's prepare() runs once per pod and returns the per-node step with whatever it
// precomputed captured in a closure — or undefined when the pod gives it nothing to do, so
// plugins a pod does not use cost nothing per node.
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { addPodToNode, newNodeInfo, setNode, type NodeInfo, type WorkloadIndex } from "./node-info.ts";
import { isTerminal, podInfoOf, type PodInfo } from "./pod-info.ts";

/** The cluster as one decision sees it: every known node with the pods counted on it. */
export interface Snapshot {
  readonly nodes: readonly NodeInfo[];
  /**
   * How many counted pods carry required anti-affinity terms, when the snapshot's maker keeps
   * count (the scheduler's cache does): at 0 no existing pod can repel a new one, and the
   * InterPodAffinity filter skips its pass over every node. Absent: unknown, look.
   */
  readonly podsWithRequiredAntiAffinity?: number;
  /** The index every node of the snapshot counts its workloads in, when they share one. */
  readonly workloads?: WorkloadIndex;
}

/** Why the node cannot take the pod (reason strings), or undefined when it can. */
export type NodeFilter = (node: NodeInfo) => string[] | undefined;

export interface FilterPlugin {
  readonly name: string;
  prepare(pod: PodInfo, snapshot: Snapshot): NodeFilter | undefined;
}

export interface NodeScorer {
  /** A raw score for one feasible node. */
  score(node: NodeInfo): number;
  /** Rescales the raw scores of all feasible nodes to 0–100 in place; absent: already 0–100. */
  normalize?(scores: Float64Array): void;
}

export interface ScorePlugin {
  readonly name: string;
  readonly weight: number;
  prepare(pod: PodInfo, snapshot: Snapshot): NodeScorer | undefined;
}

export const MAX_SCORE = 100;

/** Highest raw score → 100, others in proportion (all 0 when every score is 0). */
export function normalizeToMax(scores: Float64Array): void {
  let max = 0;
  for (const s of scores) if (s > max) max = s;
  for (let i = 0; i < scores.length; i++) scores[i] = max > 0 ? (scores[i] * MAX_SCORE) / max : 0;
}

/** Lowest raw score is best: 0 → 100, the highest → 0 (all 100 when every score is 0). */
export function normalizeReverse(scores: Float64Array): void {
  let max = 0;
  for (const s of scores) if (s > max) max = s;
  for (let i = 0; i < scores.length; i++) scores[i] = max > 0 ? MAX_SCORE - (scores[i] * MAX_SCORE) / max : MAX_SCORE;
}

/**
 * A snapshot from plain objects (tests, benchmarks): pods with a nodeName count on that node
 * unless they are Succeeded or Failed.
 */
export function buildSnapshot(nodes: readonly Node[], pods: readonly Pod[] = []): Snapshot {
  const byName = new Map<string, NodeInfo>();
  const workloads: WorkloadIndex = new Map();
  for (const n of nodes) {
    const info = newNodeInfo(n.metadata?.name ?? "", workloads);
    setNode(info, n);
    byName.set(info.name, info);
  }
  for (const p of pods) {
    const info = byName.get(p.spec?.nodeName ?? "");
    if (info && !isTerminal(p)) addPodToNode(info, podInfoOf(p));
  }
  return { nodes: [...byName.values()], workloads };
}
