// Names and small helpers of the storage kinds (StorageClass, PersistentVolume,
// PersistentVolumeClaim) shared by the apiserver, the PV controller, the scheduler and the agent.
import type { PersistentVolume, PersistentVolumeClaim, StorageClass } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { quantityToBytes } from "./quantity.ts";

/** "true" on the StorageClass that claims naming no class get (Kubernetes' DefaultStorageClass admission). */
export const DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class";
/** Set by the scheduler on a WaitForFirstConsumer claim: the node of its first pod. */
export const SELECTED_NODE_ANNOTATION = "volume.kubernetes.io/selected-node";
/** Who made a provisioned volume (its StorageClass's provisioner). */
export const PROVISIONED_BY_ANNOTATION = "pv.kubernetes.io/provisioned-by";
/** A claim is not removed while a pod uses it. */
export const PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection";
/** A volume is not removed while a claim is bound to it. */
export const PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection";
/** A local-path volume waits for its node's agent to remove its directory. */
export const LOCAL_PATH_CLEANUP_FINALIZER = "skiff.io/local-path-cleanup";

/** On a Node: the directory its agent makes local-path volumes in (<root-dir>/storage). */
export const LOCAL_PATH_DIR_ANNOTATION = "skiff.io/local-path-dir";

/** The built-in provisioner (a directory on the pod's node, like k3s's local-path). */
export const LOCAL_PATH_PROVISIONER = "skiff.io/local-path";
/** Classes of static volumes only (nobody provisions). */
export const NO_PROVISIONER = "kubernetes.io/no-provisioner";
export const KNOWN_PROVISIONERS = [LOCAL_PATH_PROVISIONER, NO_PROVISIONER];
/** The class `skiff up` / the controller-manager creates. */
export const LOCAL_PATH_CLASS = "local-path";

/**
 * The field selector agents watch their local-path volumes with: the one node a volume's
 * required nodeAffinity names (see pinnedNode).
 */
export const PINNED_NODE_FIELD = "spec.nodeAffinity.nodeName";

const HOSTNAME_LABEL = "kubernetes.io/hostname";

/**
 * The single node a volume's nodeAffinity pins it to — one term with one requirement
 * `kubernetes.io/hostname In [N]` or `metadata.name In [N]` (agents label their Node with its
 * name) — or "" when it names none or several.
 */
export function pinnedNode(pv: PersistentVolume): string {
  const terms = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? [];
  if (terms.length !== 1) return "";
  const reqs = [...terms[0].matchExpressions.filter((r) => r.key === HOSTNAME_LABEL), ...terms[0].matchFields.filter((r) => r.key === "metadata.name")];
  const all = terms[0].matchExpressions.length + terms[0].matchFields.length;
  if (reqs.length !== 1 || all !== 1 || reqs[0].operator !== "In" || reqs[0].values.length !== 1) return "";
  return reqs[0].values[0];
}

/** Whether the class is marked default. */
export function isDefaultClass(sc: StorageClass): boolean {
  return sc.metadata?.annotations[DEFAULT_CLASS_ANNOTATION] === "true";
}

/** The default class of several (the newest when more than one is marked, as Kubernetes does), or undefined. */
export function defaultClass(classes: readonly StorageClass[]): StorageClass | undefined {
  const marked = classes.filter(isDefaultClass);
  const ms = (sc: StorageClass) => Number(sc.metadata?.creationTimestamp?.seconds ?? 0n);
  marked.sort((a, b) => ms(b) - ms(a) || (a.metadata!.name < b.metadata!.name ? -1 : 1));
  return marked[0];
}

/** A claim's class: "" for a claim that names none (it binds only volumes without a class). */
export function claimClass(pvc: PersistentVolumeClaim): string {
  return pvc.spec?.storageClassName ?? "";
}

/** Bytes of a "storage" quantity (0n when absent; validation has checked the format). */
export function storageBytes(list: Record<string, string> | undefined): bigint {
  const q = list?.storage;
  return q ? quantityToBytes(q) : 0n;
}

/** "ns/name" of the claim a volume's claimRef names, or undefined. */
export function claimRefKey(pv: PersistentVolume): string | undefined {
  const ref = pv.spec?.claimRef;
  return ref && ref.name !== "" ? `${ref.namespace}/${ref.name}` : undefined;
}

/** The directory the local-path provisioner makes for a claim, under an agent's root dir. */
export function localPathDirName(pvName: string, namespace: string, claim: string): string {
  return `${pvName}_${namespace}_${claim}`;
}

/** Whether a volume was made by the local-path provisioner. */
export const isLocalPath = (pv: PersistentVolume) => pv.metadata?.annotations[PROVISIONED_BY_ANNOTATION] === LOCAL_PATH_PROVISIONER;
