// What the ReplicaSet controller needs to know about pods: controller references, whether a pod
// counts (active, ready, available), which pods to delete first, and a new pod from a template.
// Pure functions, shared with other controllers that manage pods (Deployment).
import { create } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { OwnerReferenceSchema, type OwnerReference } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, PodSpecSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import type { ApiObject } from "../../api/registry.ts";

/** The owner reference with controller=true, if any: the one object that manages this one. */
export function controllerRefOf(obj: ApiObject): OwnerReference | undefined {
  return obj.metadata?.ownerReferences.find((r) => r.controller === true);
}

/** A controller reference to `owner` for its dependents. */
export function newControllerRef(owner: ApiObject, apiVersion: string, kind: string): OwnerReference {
  return create(OwnerReferenceSchema, {
    apiVersion,
    kind,
    name: owner.metadata?.name ?? "",
    uid: owner.metadata?.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  });
}

/** Counts toward replicas: not finished, not being deleted. */
export function isPodActive(pod: Pod): boolean {
  const phase = pod.status?.phase ?? "";
  return phase !== "Succeeded" && phase !== "Failed" && pod.metadata?.deletionTimestamp === undefined;
}

function readyCondition(pod: Pod) {
  return pod.status?.conditions.find((c) => c.type === "Ready");
}

export function isPodReady(pod: Pod): boolean {
  return readyCondition(pod)?.status === "True";
}

/** When the pod last became ready (ms since the epoch), if it is ready. */
export function podReadySince(pod: Pod): number | undefined {
  const c = readyCondition(pod);
  if (c?.status !== "True") return undefined;
  return c.lastTransitionTime ? timestampMs(c.lastTransitionTime) : undefined;
}

/** Ready for at least minReadySeconds (a ready pod without a transition time counts as available). */
export function isPodAvailable(pod: Pod, minReadySeconds: number, nowMs: number): boolean {
  if (!isPodReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  const since = podReadySince(pod);
  return since === undefined || since + minReadySeconds * 1000 <= nowMs;
}

const phaseRank: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

const restarts = (pod: Pod) => (pod.status?.containerStatuses ?? []).reduce((n, c) => Math.max(n, c.restartCount), 0);
const createdAt = (pod: Pod) => (pod.metadata?.creationTimestamp ? timestampMs(pod.metadata.creationTimestamp) : 0);

/**
 * Orders pods for deletion: negative when `a` should go before `b` (it is worth less). As in
 * Kubernetes: unscheduled before scheduled; Pending before Unknown before Running; not ready
 * before ready; ready for less time before ready longer; more restarts before fewer; newer before
 * older.
 */
export function compareForDeletion(a: Pod, b: Pod): number {
  const aBound = (a.spec?.nodeName ?? "") !== "";
  const bBound = (b.spec?.nodeName ?? "") !== "";
  if (aBound !== bBound) return aBound ? 1 : -1;
  const pa = phaseRank[a.status?.phase ?? ""] ?? 0;
  const pb = phaseRank[b.status?.phase ?? ""] ?? 0;
  if (pa !== pb) return pa - pb;
  const ra = isPodReady(a);
  const rb = isPodReady(b);
  if (ra !== rb) return ra ? 1 : -1;
  if (ra && rb) {
    const sa = podReadySince(a) ?? 0;
    const sb = podReadySince(b) ?? 0;
    if (sa !== sb) return sb - sa; // became ready later: goes first
  }
  const rsa = restarts(a);
  const rsb = restarts(b);
  if (rsa !== rsb) return rsb - rsa;
  const ca = createdAt(a);
  const cb = createdAt(b);
  if (ca !== cb) return cb - ca; // newer first
  return (a.metadata?.name ?? "") < (b.metadata?.name ?? "") ? -1 : 1;
}

/** The `count` pods worth least, in the order they should go. */
export function podsToDelete(pods: readonly Pod[], count: number): Pod[] {
  return [...pods].sort(compareForDeletion).slice(0, Math.max(0, count));
}

/** Every label of the template is on the pod with the same value. */
export function hasTemplateLabels(pod: Pod, templateLabels: Record<string, string>): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(templateLabels).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** A new pod for a ReplicaSet: the template, a generated name `<rs>-xxxxx`, controlled by the RS. */
export function podFromTemplate(rs: ReplicaSet): Pod {
  const tpl = rs.spec?.template;
  const tm = tpl?.metadata;
  const m = rs.metadata!;
  return create(PodSchema, {
    metadata: {
      generateName: `${m.name}-`,
      namespace: m.namespace,
      labels: { ...(tm?.labels ?? {}) },
      annotations: { ...(tm?.annotations ?? {}) },
      finalizers: [...(tm?.finalizers ?? [])],
      ownerReferences: [newControllerRef(rs, "apps/v1", "ReplicaSet")],
    },
    spec: tpl?.spec ? cloneMessage(PodSpecSchema, tpl.spec) : undefined,
  });
}
