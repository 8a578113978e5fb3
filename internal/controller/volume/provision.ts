// The built-in local-path provisioner (like k3s's): the default class "local-path", and for a
// claim of it whose pod's node N the scheduler picked, a hostPath volume in N's local-path
// directory (which N's agent announces on its Node and makes, see internal/agent/local-path.ts),
// pinned to N and pre-bound to the claim. Capacity is recorded, not enforced.
import { create } from "@bufbuild/protobuf";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PersistentVolumeSchema, StorageClassSchema, type PersistentVolume, type PersistentVolumeClaim, type StorageClass } from "../../../gen/skiff/v1alpha1/storage_pb.js";
import {
  DEFAULT_CLASS_ANNOTATION,
  LOCAL_PATH_CLASS,
  LOCAL_PATH_CLEANUP_FINALIZER,
  LOCAL_PATH_DIR_ANNOTATION,
  LOCAL_PATH_PROVISIONER,
  localPathDirName,
  PROVISIONED_BY_ANNOTATION,
} from "../../api/storage.ts";

/** The class created at start when absent: the default, bound on first use, deleted with its claim. */
export function localPathClass(): StorageClass {
  return create(StorageClassSchema, {
    metadata: { name: LOCAL_PATH_CLASS, annotations: { [DEFAULT_CLASS_ANNOTATION]: "true" } },
    provisioner: LOCAL_PATH_PROVISIONER,
    reclaimPolicy: "Delete",
    volumeBindingMode: "WaitForFirstConsumer",
  });
}

/** The volume's name for a claim: "pvc-<claim uid>", as Kubernetes' provisioners name theirs. */
export const provisionedName = (pvc: PersistentVolumeClaim) => `pvc-${pvc.metadata!.uid}`;

/**
 * The volume to create for a claim on `node`, or a reason why there is none yet (the node's agent
 * has not announced its local-path directory).
 */
export function localPathVolume(pvc: PersistentVolumeClaim, sc: StorageClass, node: Node): PersistentVolume | string {
  const base = node.metadata?.annotations[LOCAL_PATH_DIR_ANNOTATION] ?? "";
  const nodeName = node.metadata!.name;
  if (!base.startsWith("/")) return `node "${nodeName}" has no local-path directory yet (its agent sets the annotation ${LOCAL_PATH_DIR_ANNOTATION})`;
  const m = pvc.metadata!;
  const name = provisionedName(pvc);
  return create(PersistentVolumeSchema, {
    metadata: {
      name,
      annotations: { [PROVISIONED_BY_ANNOTATION]: LOCAL_PATH_PROVISIONER },
      // The agent of the node removes the directory, then this finalizer.
      finalizers: [LOCAL_PATH_CLEANUP_FINALIZER],
    },
    spec: {
      capacity: { storage: pvc.spec!.resources!.requests.storage },
      accessModes: [...pvc.spec!.accessModes],
      persistentVolumeReclaimPolicy: sc.reclaimPolicy || "Delete",
      storageClassName: sc.metadata!.name,
      volumeMode: "Filesystem",
      hostPath: { path: `${base.replace(/\/+$/, "")}/${localPathDirName(name, m.namespace, m.name)}`, type: "DirectoryOrCreate" },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [nodeName] }] }] } },
      claimRef: { kind: "PersistentVolumeClaim", apiVersion: "v1", namespace: m.namespace, name: m.name, uid: m.uid },
    },
  });
}
