// Which pod goes first under pressure: Kubernetes' ranking (pkg/kubelet/eviction's order, written
// anew). Pure.
//
//   1. pods using more than they request before pods within their requests
//   2. then lower priority first
//   3. then the larger usage above the request first
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { parseQuantity, quantityToBytes } from "../../api/quantity.ts";

export interface PodUsage {
  pod: Pod;
  /** Bytes the pod uses of the resource under pressure (memory working set, or disk). */
  usage: bigint;
}

/** The sum of the pod's containers' requests of `resource` (bytes); 0 when none asks. */
export function podRequest(pod: Pod, resource: "memory" | "ephemeral-storage"): bigint {
  let sum = 0n;
  for (const c of pod.spec?.containers ?? []) {
    const q = c.resources?.requests?.[resource] ?? c.resources?.limits?.[resource];
    if (!q) continue;
    try {
      sum += quantityToBytes(parseQuantity(q));
    } catch {
      // The apiserver validated it; an unreadable one counts as no request.
    }
  }
  return sum;
}

/** Pods in eviction order (first = evicted first). */
export function rankForEviction(pods: readonly PodUsage[], resource: "memory" | "ephemeral-storage"): PodUsage[] {
  const above = (p: PodUsage) => p.usage - podRequest(p.pod, resource);
  return [...pods].sort((a, b) => {
    const ea = above(a) > 0n ? 1 : 0;
    const eb = above(b) > 0n ? 1 : 0;
    if (ea !== eb) return eb - ea;
    const pa = a.pod.spec?.priority ?? 0;
    const pb = b.pod.spec?.priority ?? 0;
    if (pa !== pb) return pa - pb;
    const d = above(b) - above(a);
    return d > 0n ? 1 : d < 0n ? -1 : 0;
  });
}
