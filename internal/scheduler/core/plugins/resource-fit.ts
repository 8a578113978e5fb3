// Resources: a node fits when, for every resource the pod requests, the requests of the pods
// already counted there plus the pod's stay within the node's allocatable, and it has room for
// one more pod. A resource the node does not list counts as 0 allocatable (except
// ephemeral-storage, which nodes that do not report it are not held to). Two scores prefer emptier nodes (least allocated) and nodes whose cpu and memory
// stay in proportion (balanced allocation), from the non-zero requests.
import { MAX_SCORE, type FilterPlugin, type ScorePlugin } from "../framework.ts";

const CPU = 0;
const MEMORY = 1;
const OTHER = 2;

export const REASON_TOO_MANY_PODS = "Too many pods";
export const insufficientReason = (resource: string) => `Insufficient ${resource}`;

export const nodeResourcesFit: FilterPlugin = {
  name: "NodeResourcesFit",
  prepare(pod) {
    const names = Object.keys(pod.requests);
    const amounts = names.map((n) => pod.requests[n]);
    const reasons = names.map(insufficientReason);
    // cpu and memory (nearly every pod's only requests) are read from the NodeInfo's own fields.
    const kinds = names.map((n) => (n === "cpu" ? CPU : n === "memory" ? MEMORY : OTHER));
    return (node) => {
      let out: string[] | undefined;
      if (node.podCount + 1 > node.allocatablePods) (out ??= []).push(REASON_TOO_MANY_PODS);
      for (let i = 0; i < names.length; i++) {
        let requested: number;
        let allocatable: number;
        if (kinds[i] === CPU) {
          requested = node.requestedCpu;
          allocatable = node.allocatableCpu;
        } else if (kinds[i] === MEMORY) {
          requested = node.requestedMemory;
          allocatable = node.allocatableMemory;
        } else {
          const name = names[i];
          const listed = node.allocatable[name];
          // Nodes that do not report local storage are not held to it (the agent reports none).
          if (listed === undefined && name === "ephemeral-storage") continue;
          requested = node.requested[name] ?? 0;
          allocatable = listed ?? 0;
        }
        if (requested + amounts[i] > allocatable) (out ??= []).push(reasons[i]);
      }
      return out;
    };
  },
};

/** The share of a resource in use if the pod lands here (0–1, capped at 1). */
function fraction(requested: number, allocatable: number): number {
  if (!(allocatable > 0)) return 1;
  return Math.min(1, requested / allocatable);
}

/** Mean free share of cpu and memory after placing the pod. */
export const leastAllocated: ScorePlugin = {
  name: "NodeResourcesLeastAllocated",
  weight: 1,
  prepare(pod) {
    const { cpu, memory } = pod.nonZero;
    return {
      score(node) {
        const c = fraction(node.nonZeroCpu + cpu, node.allocatableCpu);
        const m = fraction(node.nonZeroMemory + memory, node.allocatableMemory);
        return ((1 - c + (1 - m)) / 2) * MAX_SCORE;
      },
    };
  },
};

/** 100 when cpu and memory would be used in equal shares; less as they drift apart. */
export const balancedAllocation: ScorePlugin = {
  name: "NodeResourcesBalancedAllocation",
  weight: 1,
  prepare(pod) {
    const { cpu, memory } = pod.nonZero;
    return {
      score(node) {
        const c = fraction(node.nonZeroCpu + cpu, node.allocatableCpu);
        const m = fraction(node.nonZeroMemory + memory, node.allocatableMemory);
        // The standard deviation of two values is half their distance.
        return (1 - Math.abs(c - m) / 2) * MAX_SCORE;
      },
    };
  },
};
