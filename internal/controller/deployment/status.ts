// The Deployment's status as a pure function of the Deployment and its ReplicaSets: counts, the
// Available condition, and the Progressing condition with its progress deadline.
import { create } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { DeploymentStatusSchema, type Deployment, type DeploymentStatus } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import {
  AVAILABLE,
  fenceposts,
  getCondition,
  MIN_REPLICAS_AVAILABLE,
  MIN_REPLICAS_UNAVAILABLE,
  NEW_RS_AVAILABLE,
  newCondition,
  PAUSED,
  PROGRESSING,
  removeCondition,
  RESUMED,
  RS_UPDATED,
  setCondition,
  specReplicas,
  sumSpec,
  sumStatus,
  TIMED_OUT,
  toMs,
} from "./util.ts";

/** The counts and the Available condition; other conditions are carried over. */
export function calculateStatus(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined): DeploymentStatus {
  const status = d.status ? cloneMessage(DeploymentStatusSchema, d.status) : create(DeploymentStatusSchema);
  const available = sumStatus(allRSs, "availableReplicas");
  status.observedGeneration = d.metadata?.generation ?? 0n;
  status.replicas = sumStatus(allRSs, "replicas");
  status.updatedReplicas = newRS ? (newRS.status?.replicas ?? 0) : 0;
  status.readyReplicas = sumStatus(allRSs, "readyReplicas");
  status.availableReplicas = available;
  status.unavailableReplicas = Math.max(0, sumSpec(allRSs) - available);
  if (available >= specReplicas(d) - fenceposts(d).maxUnavailable) {
    setCondition(status, newCondition(AVAILABLE, "True", MIN_REPLICAS_AVAILABLE, "Deployment has minimum availability."));
  } else {
    setCondition(status, newCondition(AVAILABLE, "False", MIN_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability."));
  }
  return status;
}

const hasDeadline = (d: Deployment): boolean => (d.spec?.progressDeadlineSeconds ?? 0) > 0;

/** Every pod is updated and available, and the status is of the current spec. */
export function isComplete(d: Deployment, s: DeploymentStatus | undefined): boolean {
  const r = specReplicas(d);
  return (
    !!s && s.updatedReplicas === r && s.replicas === r && s.availableReplicas === r && s.observedGeneration >= (d.metadata?.generation ?? 0n)
  );
}

/** Something moved since the stored status: more updated, ready or available pods, fewer old. */
function progressed(old: DeploymentStatus | undefined, s: DeploymentStatus): boolean {
  if (!old) return true;
  return (
    s.updatedReplicas > old.updatedReplicas ||
    s.readyReplicas > old.readyReplicas ||
    s.availableReplicas > old.availableReplicas ||
    s.replicas - s.updatedReplicas < old.replicas - old.updatedReplicas
  );
}

/** When (ms since the epoch) the rollout runs out of time, or undefined when no clock runs. */
export function deadlineOf(d: Deployment, s: DeploymentStatus | undefined): number | undefined {
  if (!hasDeadline(d) || d.spec?.paused) return undefined;
  const cond = getCondition(s, PROGRESSING);
  if (!cond || [NEW_RS_AVAILABLE, TIMED_OUT, PAUSED].includes(cond.reason)) return undefined;
  return toMs(cond.lastUpdateTime) + d.spec!.progressDeadlineSeconds! * 1000;
}

/**
 * Progressing while paused: Unknown/DeploymentPaused; on resume Unknown/DeploymentResumed, which
 * restarts the progress clock.
 */
export function pausedConditions(d: Deployment, s: DeploymentStatus): void {
  if (!hasDeadline(d)) return;
  const cond = getCondition(s, PROGRESSING);
  if (d.spec?.paused && cond?.reason !== PAUSED) {
    setCondition(s, newCondition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused"));
  } else if (!d.spec?.paused && cond?.reason === PAUSED) {
    setCondition(s, newCondition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed"));
  }
}

/**
 * The status after a rollout step: counts, Available, and Progressing: NewReplicaSetAvailable when
 * complete, ReplicaSetUpdated (its update time moved) on any progress, ProgressDeadlineExceeded
 * once progressDeadlineSeconds passed since the last progress.
 */
export function rolloutStatus(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined, nowMs = Date.now()): DeploymentStatus {
  const s = calculateStatus(d, allRSs, newRS);
  const now = timestampFromMs(nowMs);
  if (!hasDeadline(d)) {
    removeCondition(s, PROGRESSING);
    return s;
  }
  pausedConditions(d, s);
  if (d.spec?.paused) return s;
  const cur = getCondition(s, PROGRESSING);
  const rsName = newRS?.metadata?.name;
  const what = rsName ? `ReplicaSet "${rsName}"` : `Deployment "${d.metadata?.name}"`;
  const done = s.replicas === s.updatedReplicas && cur?.reason === NEW_RS_AVAILABLE;
  if (done) return s;
  if (isComplete(d, s)) {
    setCondition(s, newCondition(PROGRESSING, "True", NEW_RS_AVAILABLE, `${what} has successfully progressed.`, now));
  } else if (progressed(d.status, s)) {
    // Same reason, new update time: SetCondition would keep the old one, so replace it here.
    const cond = newCondition(PROGRESSING, "True", RS_UPDATED, `${what} is progressing.`, now);
    if (cur?.status === "True") cond.lastTransitionTime = cur.lastTransitionTime;
    removeCondition(s, PROGRESSING);
    setCondition(s, cond);
  } else if (cur?.reason !== TIMED_OUT) {
    const deadline = deadlineOf(d, s);
    if (deadline !== undefined && deadline <= nowMs) {
      setCondition(s, newCondition(PROGRESSING, "False", TIMED_OUT, `${what} has timed out progressing.`, now));
    }
  }
  return s;
}

/** A new Progressing condition, True, for the new RS found or created (resets the clock). */
export function newRSCondition(s: DeploymentStatus, reason: string, message: string): void {
  const cond = newCondition(PROGRESSING, "True", reason, message, timestampNow());
  const cur = getCondition(s, PROGRESSING);
  if (cur?.status === "True") cond.lastTransitionTime = cur.lastTransitionTime;
  removeCondition(s, PROGRESSING);
  setCondition(s, cond);
}
