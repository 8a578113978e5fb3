// The default plugin set, in the order filters run (cheap and decisive first; a node's reasons
// come from the first filter that rejects it, as in kube-scheduler).
import type { FilterPlugin, ScorePlugin } from "../framework.ts";
import { nodeAffinity, preferredNodeAffinity } from "./node-affinity.ts";
import { nodePorts } from "./node-ports.ts";
import { interPodAffinity } from "./pod-affinity.ts";
import { balancedAllocation, leastAllocated, nodeResourcesFit } from "./resource-fit.ts";
import { workloadSpread } from "./spread.ts";
import { nodeUnschedulable, preferNoScheduleTaints, taintToleration } from "./taints.ts";

export const defaultFilters: readonly FilterPlugin[] = [
  nodeUnschedulable,
  taintToleration,
  nodeAffinity,
  nodePorts,
  nodeResourcesFit,
  interPodAffinity,
];

export const defaultScorers: readonly ScorePlugin[] = [
  leastAllocated,
  balancedAllocation,
  workloadSpread,
  preferNoScheduleTaints,
  preferredNodeAffinity,
];
