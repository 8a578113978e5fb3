// Workload spread: fewer pods of the same workload (same controller; for pods without one,
// the same namespace and labels) on a node is better, so replicas do not share a failure.
// The counts are kept as pods come and go, per workload and node, so a score is one lookup in
// the pod's workload's (small) map.
import { normalizeReverse, type ScorePlugin } from "../framework.ts";
import { workloadCount } from "../node-info.ts";

const none = () => 0;

export const workloadSpread: ScorePlugin = {
  name: "WorkloadSpread",
  weight: 2,
  prepare(pod, snapshot) {
    const key = pod.workload;
    if (key === undefined) return undefined;
    if (!snapshot.workloads) return { score: (node) => workloadCount(node, key), normalize: normalizeReverse };
    const perNode = snapshot.workloads.get(key);
    return { score: perNode ? (node) => perNode.get(node) ?? 0 : none, normalize: normalizeReverse };
  },
};
