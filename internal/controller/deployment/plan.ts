// The rollout arithmetic, as pure functions from a Deployment and its ReplicaSets to the replica
// counts the ReplicaSets should have next. sync.ts writes what these decide.
//
// Rolling update, one step at a time (each reconcile takes at most one of the first two):
//   1. scale the new RS up, as far as  replicas + maxSurge - (pods of all RSes)  allows (an old RS
//      counts with its spec or the pods it still has, whichever is more);
//   2. scale old RSes down, oldest first: their unavailable pods first (they count for nothing),
//      then available ones as far as  available - (replicas - maxUnavailable)  allows;
//   3. otherwise the rollout waits for pods to become available.
// "Available" is the RS's status.availableReplicas (ready for minReadySeconds), never counted
// above the RS's spec: a scale-down the ReplicaSet controller has not carried out yet will take
// those pods away.
import type { Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import type { ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { active, byCreation, countedAvailable, fenceposts, isRecreate, specReplicas, sumPodsOrSpec, sumSpec } from "./util.ts";

/** A new replica count for an RS. */
export interface Scale {
  rs: ReplicaSet;
  replicas: number;
}

/** What the new RS should be scaled to now (for a new RS, `newRS` is undefined: 0 so far). */
export function newRSReplicas(d: Deployment, allRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined): number {
  const replicas = specReplicas(d);
  const current = specReplicas(newRS);
  if (isRecreate(d)) return replicas;
  if (current >= replicas) return replicas;
  const { maxSurge } = fenceposts(d);
  // An RS counts with the pods it still has (status.replicas) while the ReplicaSet controller has
  // not carried out a scale-down yet: by spec alone (as kube's controller counts) the new RS could
  // make its next pod before the old RS removed the one it gave up, one pod over maxSurge.
  const total = sumPodsOrSpec(allRSs.filter((rs) => rs !== newRS)) + current;
  const room = replicas + maxSurge - total;
  if (room <= 0) return current;
  return current + Math.min(room, replicas - current);
}

/**
 * The scale-down of old RSes a rolling update may make now. `oldRSs` are every RS but the new one
 * (which may not exist yet).
 */
export function planOldScaleDown(d: Deployment, oldRSs: readonly ReplicaSet[], newRS: ReplicaSet | undefined): Scale[] {
  const olds = oldRSs.filter((rs) => specReplicas(rs) > 0).sort(byCreation);
  if (olds.length === 0) return [];
  const { maxUnavailable } = fenceposts(d);
  const minAvailable = specReplicas(d) - maxUnavailable;
  const newSpec = specReplicas(newRS);
  const newUnavailable = newRS ? newSpec - countedAvailable(newRS) : 0;
  const allPods = sumSpec(olds) + newSpec;
  // Pods that may go without the unavailable ones of the new RS eating into the budget.
  const maxScaledDown = allPods - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return [];

  const next = new Map<ReplicaSet, number>(olds.map((rs) => [rs, specReplicas(rs)]));
  // 1. Unhealthy pods of old RSes first: removing them costs no availability.
  let cleaned = 0;
  for (const rs of olds) {
    if (cleaned >= maxScaledDown) break;
    const unhealthy = specReplicas(rs) - countedAvailable(rs);
    if (unhealthy <= 0) continue;
    const n = Math.min(maxScaledDown - cleaned, unhealthy);
    next.set(rs, specReplicas(rs) - n);
    cleaned += n;
  }
  // 2. Then available pods, as far as minAvailable allows.
  const available = olds.reduce((n, rs) => n + Math.min(countedAvailable(rs), next.get(rs)!), 0) + (newRS ? countedAvailable(newRS) : 0);
  let budget = available - minAvailable;
  for (const rs of olds) {
    if (budget <= 0) break;
    const cur = next.get(rs)!;
    const n = Math.min(cur, budget);
    next.set(rs, cur - n);
    budget -= n;
  }
  return olds.filter((rs) => next.get(rs) !== specReplicas(rs)).map((rs) => ({ rs, replicas: next.get(rs)! }));
}

/** Recreate: every old RS goes to 0 at once. */
export function planRecreateScaleDown(oldRSs: readonly ReplicaSet[]): Scale[] {
  return active(oldRSs).map((rs) => ({ rs, replicas: 0 }));
}

/**
 * Scaling (spec.replicas changed, or a paused deployment): not a rollout step, so the pods are
 * spread over the RSes that have pods, proportionally to what each has. With one RS with pods
 * (or none: the newest) it simply gets spec.replicas; once the new RS is saturated the old ones
 * go to 0.
 */
export function planScale(d: Deployment, newRS: ReplicaSet | undefined, oldRSs: readonly ReplicaSet[]): Scale[] {
  const replicas = specReplicas(d);
  const all = newRS ? [newRS, ...oldRSs] : [...oldRSs];
  if (all.length === 0) return [];
  const withPods = active(all);
  if (withPods.length <= 1) {
    const target = withPods[0] ?? newRS ?? [...oldRSs].sort(byCreation).at(-1)!;
    return specReplicas(target) === replicas ? [] : [{ rs: target, replicas }];
  }
  if (newRS && specReplicas(newRS) === replicas && countedAvailable(newRS) === replicas) {
    return active(oldRSs).map((rs) => ({ rs, replicas: 0 }));
  }
  if (isRecreate(d)) return []; // a Recreate rollout in flight: its own steps settle the counts
  const allowed = replicas > 0 ? replicas + fenceposts(d).maxSurge : 0;
  const total = sumSpec(withPods);
  if (allowed === total) return [];
  // Largest remainder: each RS gets its floored share, the units left over go to the largest
  // fractions, the new RS winning ties (then the newer RS).
  const shares = withPods.map((rs) => {
    const exact = (specReplicas(rs) * allowed) / total;
    return { rs, n: Math.floor(exact), frac: exact - Math.floor(exact) };
  });
  let left = allowed - shares.reduce((s, x) => s + x.n, 0);
  const order = [...shares].sort((a, b) => b.frac - a.frac || Number(b.rs === newRS) - Number(a.rs === newRS) || byCreation(b.rs, a.rs));
  for (const s of order) {
    if (left <= 0) break;
    s.n++;
    left--;
  }
  return shares.filter((s) => s.n !== specReplicas(s.rs)).map((s) => ({ rs: s.rs, replicas: s.n }));
}
