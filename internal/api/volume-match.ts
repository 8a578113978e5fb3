// Which volume a claim may take, and which one it gets (Kubernetes' FindMatchingVolume), shared
// by the PV controller (binding) and the scheduler (can a node serve a waiting claim): a volume
// pre-bound to the claim first; else the smallest Available volume of the claim's class whose
// capacity, access modes, volume mode, selector and node fit.
import type { PersistentVolume, PersistentVolumeClaim } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { labelSelectorFromObject, matchesLabels } from "./selector.ts";
import { claimClass, storageBytes } from "./storage.ts";

/** Whether a volume's claimRef names this claim (by uid when the ref carries one). */
export function isPreBoundTo(pv: PersistentVolume, pvc: PersistentVolumeClaim): boolean {
  const ref = pv.spec?.claimRef;
  const m = pvc.metadata!;
  if (!ref || ref.name !== m.name || ref.namespace !== m.namespace) return false;
  return ref.uid === "" || ref.uid === m.uid;
}

/** Why a volume cannot serve a claim, or undefined when it can (claimRef not considered). */
export function mismatch(pv: PersistentVolume, pvc: PersistentVolumeClaim): string | undefined {
  const spec = pv.spec!;
  const want = pvc.spec!;
  if (pv.metadata?.deletionTimestamp) return "is being deleted";
  if ((spec.storageClassName ?? "") !== claimClass(pvc)) return `has class "${spec.storageClassName}", the claim wants "${claimClass(pvc)}"`;
  if (storageBytes(spec.capacity) < storageBytes(want.resources?.requests)) return `is too small (${spec.capacity.storage} < ${want.resources?.requests.storage})`;
  const missing = want.accessModes.filter((m) => !spec.accessModes.includes(m));
  if (missing.length > 0) return `lacks access mode ${missing.join(", ")}`;
  if ((spec.volumeMode || "Filesystem") !== (want.volumeMode || "Filesystem")) return `has volume mode ${spec.volumeMode}`;
  if (want.selector && !matchesLabels(labelSelectorFromObject(want.selector), pv.metadata?.labels ?? {})) return "does not match the claim's selector";
  return undefined;
}

export interface MatchOptions {
  /** A volume's node affinity against the claim's selected node (absent: any node). */
  nodeFits?: (pv: PersistentVolume) => boolean;
}

/**
 * The volume a claim binds to, from all volumes: one pre-bound to it (claimRef) if it fits, else
 * the smallest fitting volume that nobody claims. Undefined when none fits.
 */
export function findVolumeFor(pvc: PersistentVolumeClaim, volumes: readonly PersistentVolume[], opts: MatchOptions = {}): PersistentVolume | undefined {
  const fits = (pv: PersistentVolume) => mismatch(pv, pvc) === undefined && (opts.nodeFits?.(pv) ?? true);
  const preBound = volumes.find((pv) => isPreBoundTo(pv, pvc));
  if (preBound) return fits(preBound) ? preBound : undefined;
  let best: PersistentVolume | undefined;
  for (const pv of volumes) {
    // Released and Failed volumes keep their claimRef, so a volume without one is free.
    if (pv.spec?.claimRef?.name || pv.status?.phase === "Released" || pv.status?.phase === "Failed" || !fits(pv)) continue;
    if (!best || storageBytes(pv.spec!.capacity) < storageBytes(best.spec!.capacity)) best = pv;
  }
  return best;
}
