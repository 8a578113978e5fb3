// Pure helpers of the Deployment controller: the annotations and label it owns, the pod-template
// hash, maxSurge/maxUnavailable arithmetic, revisions, replica counts and conditions. Nothing
// here does I/O, so the rollout arithmetic is testable on plain objects.
import { create, equals, toJson } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import { createHash } from "node:crypto";
import type { Deployment, DeploymentStatus } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { ConditionSchema, type Condition, type OwnerReference } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { PodTemplateSpecSchema, type PodTemplateSpec } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";

/** The label that keeps the ReplicaSets of one Deployment from selecting each other's pods. */
export const POD_TEMPLATE_HASH_LABEL = "pod-template-hash";
export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";
export const REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history";
export const DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas";
export const MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas";

/** Deployment annotations that are not copied to its ReplicaSets. */
const NOT_COPIED = new Set([
  REVISION_ANNOTATION,
  REVISION_HISTORY_ANNOTATION,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  "kubectl.kubernetes.io/last-applied-configuration",
]);

export const RECREATE = "Recreate";
export const ROLLING_UPDATE = "RollingUpdate";

// Condition types and reasons, as Kubernetes names them (skiffctl rollout status reads them).
export const AVAILABLE = "Available";
export const PROGRESSING = "Progressing";
export const MIN_REPLICAS_AVAILABLE = "MinimumReplicasAvailable";
export const MIN_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable";
export const NEW_RS_CREATED = "NewReplicaSetCreated";
export const FOUND_NEW_RS = "FoundNewReplicaSet";
export const RS_UPDATED = "ReplicaSetUpdated";
export const NEW_RS_AVAILABLE = "NewReplicaSetAvailable";
export const TIMED_OUT = "ProgressDeadlineExceeded";
export const PAUSED = "DeploymentPaused";
export const RESUMED = "DeploymentResumed";

// ---- replicas ----

export const specReplicas = (o: Deployment | ReplicaSet | undefined): number => o?.spec?.replicas ?? 0;
export const sumSpec = (rss: readonly ReplicaSet[]): number => rss.reduce((n, rs) => n + specReplicas(rs), 0);
/** The pods RSes have or will have: an RS's spec, or the pods it still has while a scale-down is under way. */
export const sumPodsOrSpec = (rss: readonly ReplicaSet[]): number => rss.reduce((n, rs) => n + Math.max(specReplicas(rs), rs.status?.replicas ?? 0), 0);
export const sumStatus = (rss: readonly ReplicaSet[], f: "replicas" | "readyReplicas" | "availableReplicas"): number =>
  rss.reduce((n, rs) => n + (rs.status?.[f] ?? 0), 0);

/**
 * Available pods an RS can be counted on for: what its status reports, but never more than its
 * spec, since a scale-down its controller has not acted on yet will remove the difference.
 */
export const countedAvailable = (rs: ReplicaSet): number => Math.min(rs.status?.availableReplicas ?? 0, specReplicas(rs));

/** RSes that should have pods. */
export const active = (rss: readonly ReplicaSet[]): ReplicaSet[] => rss.filter((rs) => specReplicas(rs) > 0);

// ---- maxSurge / maxUnavailable ----

/** "3" → 3, "25%" of total → rounded up or down. Anything unparseable counts as 0. */
export function resolveIntOrPercent(value: string, total: number, roundUp: boolean): number {
  const m = /^(\d+)(%?)$/.exec(value.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  if (m[2] === "") return n;
  const exact = (n * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/**
 * The absolute surge and unavailability bounds of a rolling update. Surge rounds up and
 * unavailability down; when both come out 0 (a small deployment and small percentages) one pod
 * may be unavailable, or the rollout could never move. Recreate: both 0.
 */
export function fenceposts(d: Deployment): { maxSurge: number; maxUnavailable: number } {
  const strategy = d.spec?.strategy;
  if ((strategy?.type || ROLLING_UPDATE) !== ROLLING_UPDATE) return { maxSurge: 0, maxUnavailable: 0 };
  const replicas = specReplicas(d);
  const maxSurge = resolveIntOrPercent(strategy?.rollingUpdate?.maxSurge || "25%", replicas, true);
  let maxUnavailable = resolveIntOrPercent(strategy?.rollingUpdate?.maxUnavailable || "25%", replicas, false);
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1;
  return { maxSurge, maxUnavailable: Math.min(maxUnavailable, replicas) };
}

export const isRecreate = (d: Deployment): boolean => d.spec?.strategy?.type === RECREATE;

/** The most pods the deployment may have while rolling (for the max-replicas annotation). */
export const maxReplicas = (d: Deployment): number => specReplicas(d) + fenceposts(d).maxSurge;

// ---- templates and the hash ----

/** The template without the pod-template-hash label: what rollouts and rollbacks compare. */
export function stripHash(tpl: PodTemplateSpec | undefined): PodTemplateSpec {
  const c = tpl ? cloneMessage(PodTemplateSpecSchema, tpl) : create(PodTemplateSpecSchema);
  if (c.metadata) delete c.metadata.labels[POD_TEMPLATE_HASH_LABEL];
  return c;
}

/**
 * Whether two templates are the same pod apart from the hash label (so undo finds its RS). Runs
 * for every owned RS on each Deployment sync: compares the labels by hand and the rest through
 * shallow copies without labels, instead of deep-cloning both templates.
 */
export function sameTemplate(a: PodTemplateSpec | undefined, b: PodTemplateSpec | undefined): boolean {
  if (a === b) return true;
  if (!sameLabelsApartFromHash(a?.metadata?.labels ?? {}, b?.metadata?.labels ?? {})) return false;
  return equals(PodTemplateSpecSchema, withoutLabels(a), withoutLabels(b));
}

function sameLabelsApartFromHash(a: Record<string, string>, b: Record<string, string>): boolean {
  let n = 0;
  for (const k in a) {
    if (k === POD_TEMPLATE_HASH_LABEL) continue;
    if (!Object.hasOwn(b, k) || a[k] !== b[k]) return false;
    n++;
  }
  for (const k in b) if (k !== POD_TEMPLATE_HASH_LABEL) n--;
  return n === 0;
}

/** The template with empty labels (metadata present or absent as it was); shares everything else. */
function withoutLabels(t: PodTemplateSpec | undefined): PodTemplateSpec {
  if (!t) return create(PodTemplateSpecSchema);
  return t.metadata ? { ...t, metadata: { ...t.metadata, labels: {} } } : t;
}

/** Sorts object keys at every level, so the JSON (and the hash) does not depend on map order. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  }
  return v;
}

// No vowels (no words) and no look-alikes (0/1/3), as Kubernetes' names for hashes.
const HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";

/**
 * A stable, name-safe hash of the pod template (hash label ignored): 10 characters. A
 * collisionCount above 0 gives a different hash for the same template.
 */
export function templateHash(tpl: PodTemplateSpec | undefined, collisionCount = 0): string {
  const json = JSON.stringify(canonical(toJson(PodTemplateSpecSchema, stripHash(tpl))));
  const digest = createHash("sha256").update(json).update(collisionCount > 0 ? `#${collisionCount}` : "").digest();
  let n = digest.readBigUInt64BE(0);
  const base = BigInt(HASH_ALPHABET.length);
  let out = "";
  for (let i = 0; i < 10; i++) {
    out += HASH_ALPHABET[Number(n % base)];
    n /= base;
  }
  return out;
}

// ---- ownership ----

export function controllerRef(obj: { metadata?: { ownerReferences: OwnerReference[] } }): OwnerReference | undefined {
  return obj.metadata?.ownerReferences.find((r) => r.controller);
}

export const isOwnedBy = (rs: ReplicaSet, d: Deployment): boolean => controllerRef(rs)?.uid === d.metadata?.uid;

// ---- revisions ----

export function revisionOf(obj: { metadata?: { annotations: Record<string, string> } } | undefined): number {
  const v = Number(obj?.metadata?.annotations[REVISION_ANNOTATION] ?? "");
  return Number.isInteger(v) && v > 0 ? v : 0;
}

export const maxRevision = (rss: readonly ReplicaSet[]): number => rss.reduce((m, rs) => Math.max(m, revisionOf(rs)), 0);

const created = (rs: ReplicaSet): number => {
  const t = rs.metadata?.creationTimestamp;
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : 0;
};

/** Oldest first; ties broken by name so the order is total. */
export function byCreation(a: ReplicaSet, b: ReplicaSet): number {
  return created(a) - created(b) || (a.metadata!.name < b.metadata!.name ? -1 : 1);
}

/** Lowest revision first (then oldest). */
export function byRevision(a: ReplicaSet, b: ReplicaSet): number {
  return revisionOf(a) - revisionOf(b) || byCreation(a, b);
}

/**
 * Puts the revision and the Deployment's own annotations on the new RS; returns whether anything
 * changed. A reused RS (a rollback) remembers its earlier revisions in revision-history.
 */
export function setNewRSAnnotations(d: Deployment, rs: ReplicaSet, revision: number): boolean {
  const a = rs.metadata!.annotations;
  const before = JSON.stringify(canonical(a));
  for (const [k, v] of Object.entries(d.metadata?.annotations ?? {})) {
    if (!NOT_COPIED.has(k)) a[k] = v;
  }
  const old = revisionOf(rs);
  if (old < revision) {
    if (old > 0) a[REVISION_HISTORY_ANNOTATION] = a[REVISION_HISTORY_ANNOTATION] ? `${a[REVISION_HISTORY_ANNOTATION]},${old}` : String(old);
    a[REVISION_ANNOTATION] = String(revision);
  }
  return JSON.stringify(canonical(a)) !== before;
}

/** Sets desired-replicas and max-replicas on an RS; returns whether they changed. */
export function setReplicasAnnotations(rs: ReplicaSet, desired: number, max: number): boolean {
  const a = rs.metadata!.annotations;
  const changed = a[DESIRED_REPLICAS_ANNOTATION] !== String(desired) || a[MAX_REPLICAS_ANNOTATION] !== String(max);
  a[DESIRED_REPLICAS_ANNOTATION] = String(desired);
  a[MAX_REPLICAS_ANNOTATION] = String(max);
  return changed;
}

export function annotatedReplicas(rs: ReplicaSet, key: string): number | undefined {
  const v = rs.metadata?.annotations[key];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

// ---- conditions ----

export function getCondition(status: DeploymentStatus | undefined, type: string): Condition | undefined {
  return status?.conditions.find((c) => c.type === type);
}

export function newCondition(type: string, status: string, reason: string, message: string, now: Timestamp = timestampNow()): Condition {
  return create(ConditionSchema, { type, status, reason, message, lastUpdateTime: now, lastTransitionTime: now });
}

/**
 * Sets a condition. The same status and reason leaves the existing one alone (its times too);
 * the same status with another reason keeps the transition time.
 */
export function setCondition(status: DeploymentStatus, cond: Condition): void {
  const cur = getCondition(status, cond.type);
  if (cur && cur.status === cond.status && cur.reason === cond.reason) return;
  if (cur && cur.status === cond.status) cond.lastTransitionTime = cur.lastTransitionTime;
  status.conditions = [...status.conditions.filter((c) => c.type !== cond.type), cond];
}

export function removeCondition(status: DeploymentStatus, type: string): void {
  status.conditions = status.conditions.filter((c) => c.type !== type);
}

export const toMs = (t: Timestamp | undefined): number => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0);
