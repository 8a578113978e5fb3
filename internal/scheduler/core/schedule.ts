// One scheduling decision: filter every node, score the feasible ones, pick the best.
//
//   prepare plugins for the pod ─► filter each node (first rejecting filter gives its reasons)
//        ─► none feasible: { reasons per node, message "0/N nodes are available: …" }
//        ─► one feasible: it
//        ─► several: each scorer's raw scores ─► normalize to 0–100 ─► weighted sum ─► max
//                    (ties broken at random with the injected rng)
//
// Pure: reads the snapshot, changes nothing.
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { FilterPlugin, NodeFilter, ScorePlugin, Snapshot } from "./framework.ts";
import type { NodeInfo } from "./node-info.ts";
import { podInfoOf, type PodInfo } from "./pod-info.ts";
import { defaultFilters, defaultScorers } from "./plugins/index.ts";

export interface ScheduleOptions {
  filters?: readonly FilterPlugin[];
  scorers?: readonly ScorePlugin[];
  /** Uniform in [0, 1); breaks ties between equally good nodes. Default Math.random. */
  rng?: () => number;
  /**
   * Stop filtering once this share of the nodes (at least 100) passed, like kube-scheduler's
   * percentageOfNodesToScore: 0 (default) is its adaptive value, 50% falling by 1 per 125 nodes
   * down to 5%; 100 always looks at every node. Decisions stay good (the best of hundreds) and
   * cost less on big clusters.
   */
  percentageOfNodesToScore?: number;
  /** Where in the node list filtering starts; createNodeRotation() moves it on after each decision. */
  startIndex?: number;
}

export interface Scheduled {
  node: string;
  /** The winner's weighted score. */
  score: number;
  /** How many nodes passed the filters. */
  feasible: number;
  /** How many places of the node list were looked at (the next decision starts after them). */
  examined: number;
}

export interface Unschedulable {
  /** node name → why it cannot take the pod */
  reasons: Record<string, string[]>;
  /** The FailedScheduling message: "0/3 nodes are available: 2 Insufficient cpu, …." */
  message: string;
  /** Places of the node list looked at: all of them (no node fits). */
  examined: number;
}

export type ScheduleResult = Scheduled | Unschedulable;

export function isScheduled(r: ScheduleResult): r is Scheduled {
  return "node" in r;
}

/** "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable." (most common first) */
export function formatFitError(totalNodes: number, reasons: Record<string, readonly string[]>): string {
  if (totalNodes === 0) return "no nodes available to schedule pods";
  const counts = new Map<string, number>();
  for (const list of Object.values(reasons)) for (const r of list) counts.set(r, (counts.get(r) ?? 0) + 1);
  const parts = [...counts]
    .sort(([ra, a], [rb, b]) => b - a || (ra < rb ? -1 : ra > rb ? 1 : 0))
    .map(([r, n]) => `${n} ${r}`);
  return `0/${totalNodes} nodes are available: ${parts.join(", ")}.`;
}

export interface FilterResult {
  feasible: NodeInfo[];
  /** node name → why it was rejected */
  reasons: Record<string, string[]>;
  /** Nodes looked at. */
  total: number;
  /** Places of the node list passed, nodes known only from their pods included. */
  examined: number;
}

const MIN_FEASIBLE_TO_FIND = 100;

/** How many feasible nodes are enough, out of n (kube-scheduler's numFeasibleNodesToFind). */
export function feasibleNodesToFind(n: number, percentage = 0): number {
  if (n <= MIN_FEASIBLE_TO_FIND || percentage >= 100) return n;
  const pct = percentage > 0 ? percentage : Math.max(5, 50 - Math.floor(n / 125));
  return Math.max(MIN_FEASIBLE_TO_FIND, Math.floor((n * pct) / 100));
}

/** The filter phase alone: which nodes can take the pod, and why the others cannot. */
export function filterNodes(
  pod: Pod | PodInfo,
  snapshot: Snapshot,
  plugins: readonly FilterPlugin[] = defaultFilters,
  enough = Infinity,
  startIndex = 0,
): FilterResult {
  if (!("requests" in pod)) pod = podInfoOf(pod);
  const filters: NodeFilter[] = [];
  for (const p of plugins) {
    const f = p.prepare(pod, snapshot);
    if (f) filters.push(f);
  }
  const feasible: NodeInfo[] = [];
  const reasons: Record<string, string[]> = {};
  let total = 0;
  const all = snapshot.nodes;
  const start = all.length > 0 ? startIndex % all.length : 0;
  let k = 0;
  for (; k < all.length && feasible.length < enough; k++) {
    const node = all[(start + k) % all.length];
    if (!node.node) continue;
    total++;
    let rejected: string[] | undefined;
    for (let i = 0; i < filters.length; i++) {
      const r = filters[i](node);
      if (r && r.length > 0) {
        rejected = r;
        break;
      }
    }
    if (rejected) reasons[node.name] = rejected;
    else feasible.push(node);
  }
  return { feasible, reasons, total, examined: k };
}

function scoreNodes(pod: PodInfo, snapshot: Snapshot, nodes: readonly NodeInfo[], plugins: readonly ScorePlugin[]): Float64Array {
  const total = new Float64Array(nodes.length);
  const raw = new Float64Array(nodes.length);
  for (const p of plugins) {
    if (p.weight === 0) continue;
    const scorer = p.prepare(pod, snapshot);
    if (!scorer) continue;
    for (let i = 0; i < nodes.length; i++) raw[i] = scorer.score(nodes[i]);
    scorer.normalize?.(raw); // after the whole pass: metrics.ts times a scorer from its first score to here
    for (let i = 0; i < nodes.length; i++) total[i] += raw[i] * p.weight;
  }
  return total;
}

export function schedule(pod: Pod | PodInfo, snapshot: Snapshot, opts: ScheduleOptions = {}): ScheduleResult {
  const info = "requests" in pod ? pod : podInfoOf(pod);
  const enough = feasibleNodesToFind(snapshot.nodes.length, opts.percentageOfNodesToScore);
  const { feasible, reasons, total, examined } = filterNodes(info, snapshot, opts.filters ?? defaultFilters, enough, opts.startIndex);
  if (feasible.length === 0) return { reasons, message: formatFitError(total, reasons), examined };
  if (feasible.length === 1) return { node: feasible[0].name, score: 0, feasible: 1, examined };

  const scores = scoreNodes(info, snapshot, feasible, opts.scorers ?? defaultScorers);
  const rng = opts.rng ?? Math.random;
  let best = 0;
  let ties = 1;
  for (let i = 1; i < feasible.length; i++) {
    if (scores[i] > scores[best]) {
      best = i;
      ties = 1;
    } else if (scores[i] === scores[best]) {
      // Reservoir sampling: each of the k tied nodes ends up chosen with probability 1/k.
      ties++;
      if (rng() * ties < 1) best = i;
    }
  }
  return { node: feasible[best].name, score: scores[best], feasible: feasible.length, examined };
}

export interface NodeRotation {
  /** schedule() starting where the previous decision stopped. */
  schedule(pod: Pod | PodInfo, snapshot: Snapshot, opts?: Omit<ScheduleOptions, "startIndex">): ScheduleResult;
  /** Where the next decision starts. */
  readonly nextStartIndex: number;
}

/**
 * Decisions in a row, each starting its search where the previous one stopped (kube-scheduler's
 * nextStartNodeIndex): with percentageOfNodesToScore below 100, every node still gets its turn.
 */
export function createNodeRotation(): NodeRotation {
  let next = 0;
  return {
    schedule(pod, snapshot, opts = {}) {
      const r = schedule(pod, snapshot, { ...opts, startIndex: next });
      const n = snapshot.nodes.length;
      next = n > 0 ? (next + r.examined) % n : 0;
      return r;
    },
    get nextStartIndex() {
      return next;
    },
  };
}
