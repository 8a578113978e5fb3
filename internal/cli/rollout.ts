// What the rollout commands read from a Deployment and its ReplicaSets, as kubectl reads it:
// the progress message of `rollout status`, the revisions of `rollout history`, and the
// ReplicaSet `rollout undo` goes back to. Pure functions, apart from listing the ReplicaSets.
//
// The names below are the Deployment controller's contract with its readers (Kubernetes' own
// names); the controller in internal/controller/deployment writes them.
import { clone, equals } from "@bufbuild/protobuf";
import type { Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { PodTemplateSpecSchema, type PodTemplateSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { kindByName } from "../api/registry.ts";
import { formatLabelSelector, labelSelectorFromObject } from "../api/selector.ts";
import type { Api } from "./context.ts";
import { CliError } from "./errors.ts";
import { listAllPages } from "../client/pager.ts";

export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";
export const CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause";
export const POD_TEMPLATE_HASH_LABEL = "pod-template-hash";
const PROGRESSING = "Progressing";
const TIMED_OUT = "ProgressDeadlineExceeded";

/** Deployment annotations a rollback keeps, and does not take from the ReplicaSet. */
const KEPT_ON_ROLLBACK = new Set([
  "kubectl.kubernetes.io/last-applied-configuration",
  REVISION_ANNOTATION,
  "deployment.kubernetes.io/revision-history",
  "deployment.kubernetes.io/desired-replicas",
  "deployment.kubernetes.io/max-replicas",
  "deprecated.deployment.rollback.to",
]);

/** The revision annotation as a number; 0 when absent or not a number. */
export function revisionOf(obj: { metadata?: { annotations: Record<string, string> } } | undefined): number {
  const v = obj?.metadata?.annotations[REVISION_ANNOTATION];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 0;
}

export interface RolloutState {
  /** One line, newline included, as kubectl words it. */
  message: string;
  done: boolean;
}

/**
 * Where a Deployment's rollout stands. Done: the status is of the current generation, every
 * replica is updated, no old ones are left, and every updated one is available. Throws when the
 * rollout passed its progress deadline, or (with `revision`) when another revision is rolling.
 */
export function rolloutState(d: Deployment, revision = 0): RolloutState {
  const name = d.metadata?.name ?? "";
  if (revision > 0 && revisionOf(d) !== revision) {
    throw new CliError(`desired revision (${revision}) is different from the running revision (${revisionOf(d)})`);
  }
  const st = d.status;
  if (!st || st.observedGeneration < (d.metadata?.generation ?? 0n)) {
    return { message: "Waiting for deployment spec update to be observed...\n", done: false };
  }
  const progressing = st.conditions.find((c) => c.type === PROGRESSING);
  if (progressing?.reason === TIMED_OUT) throw new CliError(`deployment "${name}" exceeded its progress deadline`);
  const replicas = d.spec?.replicas ?? 1;
  const waiting = (what: string) => ({ message: `Waiting for deployment "${name}" rollout to finish: ${what}...\n`, done: false });
  if (st.updatedReplicas < replicas) return waiting(`${st.updatedReplicas} out of ${replicas} new replicas have been updated`);
  if (st.replicas > st.updatedReplicas) return waiting(`${st.replicas - st.updatedReplicas} old replicas are pending termination`);
  if (st.availableReplicas < st.updatedReplicas) return waiting(`${st.availableReplicas} of ${st.updatedReplicas} updated replicas are available`);
  return { message: `deployment "${name}" successfully rolled out\n`, done: true };
}

/** The ReplicaSets whose controller is this Deployment, lowest revision first. */
export async function ownedReplicaSets(api: Api, d: Deployment): Promise<ReplicaSet[]> {
  let labelSelector = "";
  try {
    labelSelector = formatLabelSelector(labelSelectorFromObject(d.spec?.selector));
  } catch {
    // No usable selector: list them all; ownership decides.
  }
  const { items } = await listAllPages(api.client(kindByName("ReplicaSet")!), d.metadata!.namespace, { labelSelector });
  const uid = d.metadata!.uid;
  return (items as ReplicaSet[])
    .filter((rs) => rs.metadata?.ownerReferences.some((r) => r.controller && r.uid === uid))
    .sort((a, b) => revisionOf(a) - revisionOf(b));
}

/** [revision, change-cause] per revision, oldest first (ReplicaSets without one are left out). */
export function historyRows(rss: ReplicaSet[]): [number, string][] {
  const rows = new Map<number, string>();
  for (const rs of rss) {
    const rev = revisionOf(rs);
    if (rev > 0) rows.set(rev, rs.metadata?.annotations[CHANGE_CAUSE_ANNOTATION] || "<none>");
  }
  return [...rows.entries()].sort(([a], [b]) => a - b);
}

/** The ReplicaSet of a revision (0: the one before the latest), or an error saying why not. */
export function replicaSetForRevision(d: Deployment, rss: ReplicaSet[], toRevision: number): ReplicaSet {
  const withRevision = rss.filter((rs) => revisionOf(rs) > 0).sort((a, b) => revisionOf(b) - revisionOf(a));
  if (toRevision > 0) {
    const rs = withRevision.find((r) => revisionOf(r) === toRevision);
    if (!rs) throw new CliError(`unable to find specified revision ${toRevision} in history`);
    return rs;
  }
  if (withRevision.length < 2) throw new CliError(`no rollout history found for deployment "${d.metadata?.name}": nothing to roll back to`);
  return withRevision[1];
}

function withoutHash(t: PodTemplateSpec | undefined): PodTemplateSpec | undefined {
  if (!t) return t;
  const c = clone(PodTemplateSpecSchema, t);
  if (c.metadata) delete c.metadata.labels[POD_TEMPLATE_HASH_LABEL];
  return c;
}

/** Whether two pod templates are the same apart from the pod-template-hash label. */
export function sameTemplate(a: PodTemplateSpec | undefined, b: PodTemplateSpec | undefined): boolean {
  const x = withoutHash(a);
  const y = withoutHash(b);
  if (!x || !y) return x === y;
  return equals(PodTemplateSpecSchema, x, y);
}

/**
 * Rolls `d` back to the template of `rs` (without its hash label), with the ReplicaSet's
 * annotations (change-cause …) except the Deployment's own bookkeeping. Returns false when the
 * template already is that one.
 */
export function rollBack(d: Deployment, rs: ReplicaSet): boolean {
  if (sameTemplate(d.spec?.template, rs.spec?.template)) return false;
  d.spec!.template = withoutHash(rs.spec?.template);
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.metadata!.annotations)) if (KEPT_ON_ROLLBACK.has(k)) annotations[k] = v;
  for (const [k, v] of Object.entries(rs.metadata?.annotations ?? {})) if (!KEPT_ON_ROLLBACK.has(k)) annotations[k] = v;
  d.metadata!.annotations = annotations;
  return true;
}
