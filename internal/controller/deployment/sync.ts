// One reconcile of one Deployment whose ReplicaSets are already claimed: find or create the new
// RS (and sync revisions), take one rollout step (rolling or recreate) or a scaling step, clean
// up history, and write the status. plan.ts decides the numbers; this file does the writes.
import { create, equals } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeploymentSchema, DeploymentStatusSchema, type Deployment, type DeploymentStatus } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { LabelSelectorSchema, ObjectMetaSchema, OwnerReferenceSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { PodTemplateSpecSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import type { EventRecorder } from "../../client/events.ts";
import { keyOf } from "../../client/informer.ts";
import type { ResourceClient } from "../../client/resource-client.ts";
import type { Result } from "../controller.ts";
import type { Freshness } from "./freshness.ts";
import { newRSReplicas, planOldScaleDown, planRecreateScaleDown, planScale, type Scale } from "./plan.ts";
import { calculateStatus, deadlineOf, isComplete, newRSCondition, pausedConditions, rolloutStatus } from "./status.ts";
import {
  active,
  annotatedReplicas,
  byRevision,
  DESIRED_REPLICAS_ANNOTATION,
  FOUND_NEW_RS,
  getCondition,
  isRecreate,
  maxReplicas,
  maxRevision,
  NEW_RS_CREATED,
  POD_TEMPLATE_HASH_LABEL,
  PROGRESSING,
  REVISION_ANNOTATION,
  revisionOf,
  sameTemplate,
  setNewRSAnnotations,
  setReplicasAnnotations,
  specReplicas,
  sumStatus,
  templateHash,
} from "./util.ts";

export interface SyncDeps {
  deployments: ResourceClient<Deployment>;
  replicaSets: ResourceClient<ReplicaSet>;
  recorder: EventRecorder;
  freshness: Freshness;
  /** Pods whose controller is this RS (Recreate waits for the old ones to be gone). */
  podsOf(rs: ReplicaSet): Pod[];
}

export const rsKey = (rs: ReplicaSet): string => `ReplicaSet/${keyOf(rs)}`;
export const deploymentKey = (d: Deployment): string => `Deployment/${keyOf(d)}`;

/** Reconciles a Deployment given the RSes it owns (already adopted/released). */
export async function syncDeployment(deps: SyncDeps, deployment: Deployment, owned: readonly ReplicaSet[]): Promise<Result> {
  const { deployments, replicaSets, recorder, freshness } = deps;
  const owner = keyOf(deployment);
  let d = deployment;

  // ---- writes ----

  async function updateRS(rs: ReplicaSet): Promise<ReplicaSet> {
    const out = await replicaSets.update(rs);
    freshness.wrote(rsKey(out), out.metadata!.resourceVersion, owner);
    return out;
  }

  async function updateDeployment(next: Deployment): Promise<void> {
    d = await deployments.update(next);
    freshness.wrote(deploymentKey(d), d.metadata!.resourceVersion, owner);
  }

  async function writeStatus(status: DeploymentStatus): Promise<void> {
    if (equals(DeploymentStatusSchema, d.status ?? create(DeploymentStatusSchema), status)) return;
    const next = cloneMessage(DeploymentSchema, d);
    next.status = status;
    d = await deployments.updateStatus(next);
    freshness.wrote(deploymentKey(d), d.metadata!.resourceVersion, owner);
  }

  /** Sets replicas (and the desired/max annotations) on an RS, with an event for a size change. */
  async function scaleRS(rs: ReplicaSet, replicas: number): Promise<ReplicaSet> {
    const next = cloneMessage(ReplicaSetSchema, rs);
    const resized = specReplicas(rs) !== replicas;
    const annotated = setReplicasAnnotations(next, specReplicas(d), maxReplicas(d));
    if (!resized && !annotated) return rs;
    next.spec!.replicas = replicas;
    const out = await updateRS(next);
    if (resized) {
      const dir = replicas > specReplicas(rs) ? "up" : "down";
      recorder.event(d, "Normal", "ScalingReplicaSet", `Scaled ${dir} replica set ${rs.metadata!.name} to ${replicas}`);
    }
    return out;
  }

  async function apply(scales: readonly Scale[], rss: ReplicaSet[]): Promise<ReplicaSet[]> {
    const out = [...rss];
    for (const s of scales) {
      const i = out.indexOf(s.rs);
      const updated = await scaleRS(s.rs, s.replicas);
      if (i >= 0) out[i] = updated;
    }
    return out;
  }

  // ---- the new ReplicaSet ----

  /**
   * The RS running the Deployment's current template (compared without the hash label, so a
   * rollback finds its old RS), with the next revision; created if missing and `createIfMissing`.
   */
  async function newAndOld(createIfMissing: boolean): Promise<{ newRS?: ReplicaSet; oldRSs: ReplicaSet[] }> {
    const candidates = owned.filter((rs) => sameTemplate(rs.spec?.template, d.spec?.template));
    // Oldest first: with two RSes of one template (a hash collision) the older one wins.
    candidates.sort((a, b) => byRevision(a, b));
    let newRS: ReplicaSet | undefined = candidates[0];
    const oldRSs = owned.filter((rs) => rs !== newRS);
    const revision = maxRevision(oldRSs) + 1;
    const status = cloneMessage(DeploymentStatusSchema, d.status ?? create(DeploymentStatusSchema));

    if (newRS) {
      const next = cloneMessage(ReplicaSetSchema, newRS);
      // An RS that had a revision before the current ones: a rollback (undo) to it.
      const reused = revisionOf(newRS) > 0 && revisionOf(newRS) < revision;
      let changed = setNewRSAnnotations(d, next, revision);
      if (next.spec!.minReadySeconds !== (d.spec?.minReadySeconds ?? 0)) {
        next.spec!.minReadySeconds = d.spec?.minReadySeconds ?? 0;
        changed = true;
      }
      if (changed) newRS = await updateRS(next);
      // A rollout to an RS that had pods before (an undo) restarts the progress clock.
      if (!getCondition(status, PROGRESSING) || reused) {
        newRSCondition(status, FOUND_NEW_RS, `Found new replica set "${newRS.metadata!.name}"`);
      }
    } else if (createIfMissing) {
      newRS = await createNewRS(revision, oldRSs, status);
    }
    if (newRS) await syncRevision(newRS);
    await writeStatus(status);
    return { newRS, oldRSs };
  }

  async function createNewRS(revision: number, oldRSs: readonly ReplicaSet[], status: DeploymentStatus): Promise<ReplicaSet> {
    const m = d.metadata!;
    const hash = templateHash(d.spec?.template, d.status?.collisionCount ?? 0);
    const tpl = cloneMessage(PodTemplateSpecSchema, d.spec?.template ?? create(PodTemplateSpecSchema));
    tpl.metadata ??= create(ObjectMetaSchema);
    tpl.metadata.labels[POD_TEMPLATE_HASH_LABEL] = hash;
    const selector = cloneMessage(LabelSelectorSchema, d.spec?.selector ?? create(LabelSelectorSchema));
    selector.matchLabels[POD_TEMPLATE_HASH_LABEL] = hash;
    const rs = create(ReplicaSetSchema, {
      metadata: {
        name: `${m.name}-${hash}`,
        namespace: m.namespace,
        labels: { ...tpl.metadata!.labels },
        ownerReferences: [
          create(OwnerReferenceSchema, { apiVersion: "apps/v1", kind: "Deployment", name: m.name, uid: m.uid, controller: true, blockOwnerDeletion: true }),
        ],
      },
      spec: { replicas: 0, minReadySeconds: d.spec?.minReadySeconds ?? 0, selector, template: tpl },
    });
    setNewRSAnnotations(d, rs, revision);
    setReplicasAnnotations(rs, specReplicas(d), maxReplicas(d));
    rs.spec!.replicas = newRSReplicas(d, oldRSs, undefined);
    let created: ReplicaSet;
    try {
      created = await replicaSets.create(rs);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
      const existing = await replicaSets.get(m.namespace, rs.metadata!.name);
      // Ours with our template: we made it and the cache has not caught up. Use it.
      if (existing.metadata?.ownerReferences.some((r) => r.controller && r.uid === m.uid) && sameTemplate(existing.spec?.template, d.spec?.template)) {
        return existing;
      }
      // Someone else's RS has our name: hash again with a new collision count.
      status.collisionCount = (d.status?.collisionCount ?? 0) + 1;
      await writeStatus(status);
      throw new Error(`replica set ${rs.metadata!.name} exists with another template; hashing again (collisionCount ${status.collisionCount})`, { cause: err });
    }
    freshness.wrote(rsKey(created), created.metadata!.resourceVersion, owner);
    const replicas = specReplicas(created);
    if (replicas > 0) recorder.event(d, "Normal", "ScalingReplicaSet", `Scaled up replica set ${created.metadata!.name} to ${replicas}`);
    newRSCondition(status, NEW_RS_CREATED, `Created new replica set "${created.metadata!.name}"`);
    return created;
  }

  /** The Deployment carries its new RS's revision. */
  async function syncRevision(newRS: ReplicaSet): Promise<void> {
    const rev = newRS.metadata?.annotations[REVISION_ANNOTATION];
    if (rev === undefined || d.metadata?.annotations[REVISION_ANNOTATION] === rev) return;
    const next = cloneMessage(DeploymentSchema, d);
    next.metadata!.annotations[REVISION_ANNOTATION] = rev;
    await updateDeployment(next);
  }

  // ---- history ----

  /** Deletes old RSes with no pods beyond revisionHistoryLimit, lowest revision first. */
  async function cleanup(oldRSs: readonly ReplicaSet[]): Promise<void> {
    const limit = d.spec?.revisionHistoryLimit;
    if (limit === undefined) return;
    const cleanable = oldRSs.filter((rs) => !rs.metadata?.deletionTimestamp).sort(byRevision);
    const excess = cleanable.length - limit;
    for (const rs of cleanable.slice(0, Math.max(0, excess))) {
      const settled = (rs.status?.observedGeneration ?? 0n) >= (rs.metadata?.generation ?? 0n);
      if (specReplicas(rs) !== 0 || (rs.status?.replicas ?? 0) !== 0 || !settled) continue;
      try {
        const res = await replicaSets.delete(rs.metadata!.namespace, rs.metadata!.name, { uid: rs.metadata!.uid, propagationPolicy: "Background" });
        freshness.wrote(rsKey(rs), res.deleted ? "" : res.object.metadata!.resourceVersion, owner);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
    }
  }

  // ---- status ----

  async function finishRollout(newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): Promise<Result> {
    const all = newRS ? [newRS, ...oldRSs] : [...oldRSs];
    await writeStatus(rolloutStatus(d, all, newRS));
    const deadline = deadlineOf(d, d.status);
    // Check the progress deadline when it passes (a little after, so it has passed).
    return deadline === undefined ? undefined : { requeueAfterMs: Math.max(0, deadline - Date.now()) + 50 };
  }

  // ---- the kinds of reconcile ----

  if (d.metadata?.deletionTimestamp) {
    // Being deleted: the garbage collector takes the RSes; only report.
    const newRS = owned.find((rs) => sameTemplate(rs.spec?.template, d.spec?.template));
    await writeStatus(calculateStatus(d, owned, newRS));
    return;
  }

  const scaling = active(owned).some((rs) => {
    const desired = annotatedReplicas(rs, DESIRED_REPLICAS_ANNOTATION);
    return desired !== undefined && desired !== specReplicas(d);
  });

  if (d.spec?.paused || scaling) {
    // No rollout step: scale what exists (a paused template change creates no RS).
    const { newRS, oldRSs } = await newAndOld(false);
    let all = newRS ? [newRS, ...oldRSs] : [...oldRSs];
    all = await apply(planScale(d, newRS, oldRSs), all);
    for (const [i, rs] of all.entries()) if (specReplicas(rs) > 0) all[i] = await scaleRS(rs, specReplicas(rs));
    const nextNew = newRS ? all[0] : undefined;
    const nextOld = newRS ? all.slice(1) : all;
    if (d.spec?.paused) await cleanup(nextOld);
    const status = calculateStatus(d, all, nextNew);
    pausedConditions(d, status);
    await writeStatus(status);
    return;
  }

  if (isRecreate(d)) {
    let { newRS, oldRSs } = await newAndOld(false);
    const down = planRecreateScaleDown(oldRSs);
    if (down.length > 0) return finishRollout(newRS, await apply(down, oldRSs));
    const running = sumStatus(oldRSs, "replicas") > 0 || oldRSs.some((rs) => deps.podsOf(rs).some((p) => !["Failed", "Succeeded"].includes(p.status?.phase ?? "")));
    if (running) return finishRollout(newRS, oldRSs);
    if (!newRS) ({ newRS, oldRSs } = await newAndOld(true));
    newRS = await scaleRS(newRS!, specReplicas(d));
    if (isComplete(d, d.status)) await cleanup(oldRSs);
    return finishRollout(newRS, oldRSs);
  }

  const found = await newAndOld(true);
  const oldRSs = found.oldRSs;
  let newRS = found.newRS!;
  const all = [newRS, ...oldRSs];
  const current = specReplicas(newRS);
  const target = current > specReplicas(d) ? specReplicas(d) : newRSReplicas(d, all, newRS);
  if (target !== current) {
    newRS = await scaleRS(newRS, target);
    return finishRollout(newRS, oldRSs);
  }
  const down = planOldScaleDown(d, oldRSs, newRS);
  if (down.length > 0) return finishRollout(newRS, await apply(down, oldRSs));
  if (isComplete(d, d.status)) await cleanup(oldRSs);
  return finishRollout(newRS, oldRSs);
}
