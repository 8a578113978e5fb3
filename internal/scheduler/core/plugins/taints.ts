// Taints and tolerations: NoSchedule and NoExecute taints keep pods that do not tolerate them
// off a node; PreferNoSchedule taints only lower the node's score. Node-level blocks that kube
// expresses as taints go through here too: unschedulable (cordoned) nodes, and nodes that are
// not Ready (see NodeInfo.taints).
import type { Toleration } from "../../../../gen/skiff/v1alpha1/pod_pb.js";
import { normalizeReverse, type FilterPlugin, type ScorePlugin } from "../framework.ts";
import { TAINT_UNSCHEDULABLE, type TaintLike } from "../node-info.ts";

export const REASON_UNSCHEDULABLE = "node(s) were unschedulable";
export const untoleratedTaintReason = (t: TaintLike) => `node(s) had untolerated taint {${t.key}: ${t.value}}`;

/** Kubernetes' ToleratesTaint: effect (empty = all), key (empty + Exists = all), then value. */
export function tolerates(tol: Toleration, taint: TaintLike): boolean {
  if (tol.effect !== "" && tol.effect !== taint.effect) return false;
  const op = tol.operator || "Equal";
  if (tol.key === "") return op === "Exists";
  if (tol.key !== taint.key) return false;
  return op === "Exists" || tol.value === taint.value;
}

export function toleratesAny(tols: readonly Toleration[], taint: TaintLike): boolean {
  for (let i = 0; i < tols.length; i++) if (tolerates(tols[i], taint)) return true;
  return false;
}

const UNSCHEDULABLE_TAINT: TaintLike = { key: TAINT_UNSCHEDULABLE, value: "", effect: "NoSchedule" };

/** spec.unschedulable (a cordoned node), unless the pod tolerates node.kubernetes.io/unschedulable. */
export const nodeUnschedulable: FilterPlugin = {
  name: "NodeUnschedulable",
  prepare(pod) {
    if (toleratesAny(pod.tolerations, UNSCHEDULABLE_TAINT)) return undefined;
    return (node) => (node.unschedulable ? [REASON_UNSCHEDULABLE] : undefined);
  },
};

export const taintToleration: FilterPlugin = {
  name: "TaintToleration",
  prepare(pod) {
    const tols = pod.tolerations;
    // Index loops in what runs per node and pod: a for-of iterator here was a fifth of the
    // scheduler's allocations under `bench scale` (the closures are called megamorphically).
    return (node) => {
      const taints = node.taints;
      for (let i = 0; i < taints.length; i++) {
        const taint = taints[i];
        if (taint.effect !== "NoSchedule" && taint.effect !== "NoExecute") continue;
        if (!toleratesAny(tols, taint)) return [untoleratedTaintReason(taint)];
      }
      return undefined;
    };
  },
};

/** Fewer untolerated PreferNoSchedule taints is better. */
export const preferNoScheduleTaints: ScorePlugin = {
  name: "TaintToleration",
  weight: 3,
  prepare(pod) {
    const tols = pod.tolerations.filter((t) => t.effect === "" || t.effect === "PreferNoSchedule");
    return {
      score(node) {
        let n = 0;
        const taints = node.taints;
        for (let i = 0; i < taints.length; i++) if (taints[i].effect === "PreferNoSchedule" && !toleratesAny(tols, taints[i])) n++;
        return n;
      },
      normalize: normalizeReverse,
    };
  },
};
