// A ReplicaSet's status, computed from the pods it owns (the active ones) and the outcome of the
// last attempt to create or delete pods.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConditionSchema, type Condition } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetStatusSchema, type ReplicaSet, type ReplicaSetStatus } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { hasTemplateLabels, isPodAvailable, isPodReady } from "./pods.ts";

export const REPLICA_FAILURE = "ReplicaFailure";

/** Why the last manage step failed: FailedCreate or FailedDelete, with the error's message. */
export interface ManageFailure {
  reason: "FailedCreate" | "FailedDelete";
  message: string;
}

export function calculateStatus(rs: ReplicaSet, pods: readonly Pod[], failure: ManageFailure | undefined, nowMs: number): ReplicaSetStatus {
  const templateLabels = rs.spec?.template?.metadata?.labels ?? {};
  const minReady = rs.spec?.minReadySeconds ?? 0;
  let fullyLabeled = 0;
  let ready = 0;
  let available = 0;
  for (const p of pods) {
    if (hasTemplateLabels(p, templateLabels)) fullyLabeled++;
    if (isPodReady(p)) {
      ready++;
      if (isPodAvailable(p, minReady, nowMs)) available++;
    }
  }
  // ReplicaFailure appears with the first failure and stays (unchanged) until a manage step
  // succeeds, as in Kubernetes.
  const old = rs.status?.conditions ?? [];
  let conditions: Condition[] = old.filter((c) => c.type !== REPLICA_FAILURE);
  const existing = old.find((c) => c.type === REPLICA_FAILURE);
  if (failure) {
    conditions = [
      ...conditions,
      existing ??
        create(ConditionSchema, {
          type: REPLICA_FAILURE,
          status: "True",
          reason: failure.reason,
          message: failure.message,
          lastTransitionTime: timestampFromMs(nowMs),
        }),
    ];
  }
  return create(ReplicaSetStatusSchema, {
    replicas: pods.length,
    fullyLabeledReplicas: fullyLabeled,
    readyReplicas: ready,
    availableReplicas: available,
    observedGeneration: rs.metadata?.generation ?? 0n,
    conditions,
  });
}
