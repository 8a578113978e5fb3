// Node selection by labels: spec.nodeSelector (every pair must match) and node affinity —
// required terms (any term must match; inside a term every requirement must) filter, preferred
// terms add their weights to the score.
import type { NodeSelectorRequirement, NodeSelectorTerm } from "../../../../gen/skiff/v1alpha1/pod_pb.js";
import { normalizeToMax, type FilterPlugin, type ScorePlugin } from "../framework.ts";
import type { NodeInfo } from "../node-info.ts";

export const REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector";

const INTEGER = /^[+-]?\d+$/;

function matchesValue(req: NodeSelectorRequirement, value: string | undefined): boolean {
  const has = value !== undefined;
  switch (req.operator) {
    case "In":
      return has && req.values.includes(value);
    case "NotIn":
      return !has || !req.values.includes(value);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
    case "Gt":
    case "Lt": {
      if (!has || req.values.length !== 1 || !INTEGER.test(value) || !INTEGER.test(req.values[0])) return false;
      const v = BigInt(value);
      const bound = BigInt(req.values[0]);
      return req.operator === "Gt" ? v > bound : v < bound;
    }
    default:
      return false;
  }
}

/** matchFields knows metadata.name only, as in Kubernetes. */
function fieldValue(node: NodeInfo, key: string): string | undefined {
  return key === "metadata.name" ? node.name : undefined;
}

/** A term matches when all its requirements do; a term with none matches nothing. */
export function termMatches(term: NodeSelectorTerm, node: NodeInfo): boolean {
  if (term.matchExpressions.length === 0 && term.matchFields.length === 0) return false;
  for (const r of term.matchExpressions) {
    const v = Object.hasOwn(node.labels, r.key) ? node.labels[r.key] : undefined;
    if (!matchesValue(r, v)) return false;
  }
  for (const r of term.matchFields) {
    if (r.key !== "metadata.name" || !matchesValue(r, fieldValue(node, r.key))) return false;
  }
  return true;
}

export const nodeAffinity: FilterPlugin = {
  name: "NodeAffinity",
  prepare(pod) {
    const selector = Object.entries(pod.pod.spec?.nodeSelector ?? {});
    const required = pod.pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
    const terms = required?.nodeSelectorTerms;
    if (selector.length === 0 && !required) return undefined;
    return (node) => {
      for (const [k, v] of selector) if (!Object.hasOwn(node.labels, k) || node.labels[k] !== v) return [REASON_NODE_AFFINITY];
      // A required selector with no terms matches nothing (validation normally forbids it).
      if (required && !terms!.some((t) => termMatches(t, node))) return [REASON_NODE_AFFINITY];
      return undefined;
    };
  },
};

export const preferredNodeAffinity: ScorePlugin = {
  name: "NodeAffinity",
  weight: 2,
  prepare(pod) {
    const preferred = pod.pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    if (preferred.length === 0) return undefined;
    return {
      score(node) {
        let sum = 0;
        for (const p of preferred) if (p.preference && termMatches(p.preference, node)) sum += p.weight;
        return sum;
      },
      normalize: normalizeToMax,
    };
  },
};
