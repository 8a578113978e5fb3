// Workload spread: fewer pods of the same workload (same controller; for pods without one,
// the same namespace and labels) on a node is better, so replicas do not share a failure.
// NodeInfo keeps the per-workload counts, so a score is one map lookup.
import { normalizeReverse, type ScorePlugin } from "../framework.ts";

export const workloadSpread: ScorePlugin = {
  name: "WorkloadSpread",
  weight: 2,
  prepare(pod) {
    const key = pod.workload;
    if (key === undefined) return undefined;
    return { score: (node) => node.workloads.get(key) ?? 0, normalize: normalizeReverse };
  },
};
