// The taints the node lifecycle controller manages, and how long a pod tolerates one (taint-based
// eviction). Pure functions: the controller decides with them, tests check them without servers.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Condition } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { TaintSchema, type Node, type Taint } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod, Toleration } from "../../../gen/skiff/v1alpha1/pod_pb.js";

/** The node's agent stopped heartbeating (Ready is Unknown). */
export const TAINT_UNREACHABLE = "node.kubernetes.io/unreachable";
/** The node's agent says it is not ready (Ready is False). */
export const TAINT_NOT_READY = "node.kubernetes.io/not-ready";
export const MANAGED_TAINT_KEYS: readonly string[] = [TAINT_UNREACHABLE, TAINT_NOT_READY];

export type NodeHealth = "Healthy" | "NotReady" | "Unreachable";

export function readyCondition(node: Node): Condition | undefined {
  return node.status?.conditions.find((c) => c.type === "Ready");
}

/** The managed taint key a node in this state should carry (none when healthy). */
export function taintKeyFor(health: NodeHealth): string | undefined {
  return health === "Unreachable" ? TAINT_UNREACHABLE : health === "NotReady" ? TAINT_NOT_READY : undefined;
}

/**
 * The node's taints with the managed ones made to match its health: NoSchedule and NoExecute of
 * the one wanted key, none of the other. Taints already present keep their timeAdded (eviction
 * deadlines count from it); other taints are left alone. Returns the same array when unchanged.
 */
export function reconcileTaints(taints: readonly Taint[], health: NodeHealth, nowMs: number): Taint[] {
  const wanted = taintKeyFor(health);
  const keep = taints.filter((t) => !MANAGED_TAINT_KEYS.includes(t.key) || (t.key === wanted && (t.effect === "NoSchedule" || t.effect === "NoExecute")));
  const out = [...keep];
  if (wanted) {
    for (const effect of ["NoSchedule", "NoExecute"]) {
      if (!keep.some((t) => t.key === wanted && t.effect === effect)) {
        out.push(create(TaintSchema, { key: wanted, effect, timeAdded: timestampFromMs(nowMs) }));
      }
    }
  }
  return out.length === taints.length && keep.length === taints.length ? (taints as Taint[]) : out;
}

/** NoSchedule taints a node carries while its agent reports the condition True (TaintNodesByCondition). */
export const CONDITION_TAINTS: Readonly<Record<string, string>> = {
  MemoryPressure: "node.kubernetes.io/memory-pressure",
  DiskPressure: "node.kubernetes.io/disk-pressure",
  PIDPressure: "node.kubernetes.io/pid-pressure",
};

/**
 * The node's taints with the condition taints matching its conditions: a NoSchedule taint per
 * condition that is True, none for the others (an unreachable node's conditions are Unknown:
 * its pressure taints go). Other taints are left alone. Returns the same array when unchanged.
 */
export function reconcileConditionTaints(taints: readonly Taint[], conditions: readonly Condition[], nowMs: number): Taint[] {
  const wanted = new Set(Object.entries(CONDITION_TAINTS).filter(([type]) => conditions.some((c) => c.type === type && c.status === "True")).map(([, key]) => key));
  const managed = new Set(Object.values(CONDITION_TAINTS));
  const keep = taints.filter((t) => !managed.has(t.key) || (wanted.has(t.key) && t.effect === "NoSchedule"));
  const out = [...keep];
  for (const key of wanted) {
    if (!keep.some((t) => t.key === key)) out.push(create(TaintSchema, { key, effect: "NoSchedule", timeAdded: timestampFromMs(nowMs) }));
  }
  return out.length === taints.length && keep.length === taints.length ? (taints as Taint[]) : out;
}

/** The managed NoExecute taint on a node, if any. */
export function evictionTaint(node: Node): Taint | undefined {
  return node.spec?.taints.find((t) => t.effect === "NoExecute" && MANAGED_TAINT_KEYS.includes(t.key));
}

/** Kubernetes' rule: does this toleration match this taint? */
export function tolerates(tol: Toleration, taint: Taint): boolean {
  if (tol.effect !== "" && tol.effect !== taint.effect) return false;
  if (tol.key === "") return tol.operator === "Exists";
  if (tol.key !== taint.key) return false;
  return tol.operator === "Exists" || tol.value === taint.value;
}

/**
 * How long after the taint was added the pod is evicted: the smallest tolerationSeconds of the
 * tolerations that match it; Infinity when a matching toleration has none (tolerated forever);
 * `defaultMs` when none matches (Kubernetes adds 300 s tolerations for these two taints to every
 * pod through an admission plugin; this default stands in for them).
 */
export function tolerationMs(pod: Pod, taint: Taint, defaultMs: number): number {
  const matching = (pod.spec?.tolerations ?? []).filter((t) => tolerates(t, taint));
  if (matching.length === 0) return defaultMs;
  let min = Infinity;
  for (const t of matching) {
    if (t.tolerationSeconds === undefined) return Infinity;
    min = Math.min(min, Math.max(0, Number(t.tolerationSeconds)) * 1000);
  }
  return min;
}

/** When (wall clock, ms) the pod must go because of the taint; Infinity: never. */
export function evictionDeadline(pod: Pod, taint: Taint, defaultMs: number, nowMs: number): number {
  const added = taint.timeAdded ? timestampMs(taint.timeAdded) : nowMs;
  return added + tolerationMs(pod, taint, defaultMs);
}
