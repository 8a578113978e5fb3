// Semantic checks of StorageClass, PersistentVolume and PersistentVolumeClaim: what the .proto
// rules cannot say, and every field this cluster cannot act on refused with what to do instead
// (a stored-and-ignored field would be a lie).
import type { PersistentVolume, PersistentVolumeClaim, StorageClass } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { validateResourceList } from "./quantity.ts";
import { KNOWN_PROVISIONERS } from "./storage.ts";
import { validateMeta, type Violation } from "./validation.ts";

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export function validateStorageClass(sc: StorageClass, old: StorageClass | undefined): Violation[] {
  const out = validateMeta(sc.metadata, false);
  if (sc.provisioner !== "" && !KNOWN_PROVISIONERS.includes(sc.provisioner)) {
    out.push({ field: "provisioner", message: `unknown provisioner "${sc.provisioner}": this cluster has ${KNOWN_PROVISIONERS.map((p) => `"${p}"`).join(" and ")}` });
  }
  if (Object.keys(sc.parameters).length > 0) out.push({ field: "parameters", message: "not supported: the built-in provisioners take no parameters" });
  if (sc.allowVolumeExpansion) out.push({ field: "allowVolumeExpansion", message: "not supported: no provisioner here can grow a volume; leave it unset" });
  if (sc.mountOptions.length > 0) out.push({ field: "mountOptions", message: "not supported: local and hostPath volumes are bind mounts, which take no mount options" });
  if (old) {
    for (const f of ["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"] as const) {
      if (!same(sc[f], old[f])) out.push({ field: f, message: "field is immutable" });
    }
  }
  return out;
}

function validateVolumeSpec(pv: PersistentVolume): Violation[] {
  const spec = pv.spec;
  if (!spec) return [{ field: "spec", message: "required" }];
  const out: Violation[] = [];
  const sources = [spec.hostPath && "hostPath", spec.local && "local", spec.nfs && "nfs"].filter(Boolean);
  if (sources.length !== 1) out.push({ field: "spec", message: `exactly one volume source must be set (hostPath or local), got ${sources.length === 0 ? "none" : sources.join(", ")}` });
  if (spec.nfs) out.push({ field: "spec.nfs", message: "not supported: no agent of this cluster mounts NFS; export the data on the node and use hostPath or local" });
  if (spec.local && !spec.nodeAffinity?.required) out.push({ field: "spec.nodeAffinity", message: "required for a local volume: the node that has the disk" });
  if (spec.local && spec.local.fsType !== "") out.push({ field: "spec.local.fsType", message: "not supported: a local volume here is a directory, not a block device to format" });
  if (spec.hostPath && !spec.hostPath.path.startsWith("/")) out.push({ field: "spec.hostPath.path", message: "must be an absolute path" });
  if (spec.local && !spec.local.path.startsWith("/")) out.push({ field: "spec.local.path", message: "must be an absolute path" });
  if (!spec.capacity.storage) out.push({ field: "spec.capacity.storage", message: "required: the volume's size (recorded, not enforced)" });
  out.push(...validateResourceList(spec.capacity, "spec.capacity", { standardNames: ["storage"] }));
  if (spec.accessModes.length === 0) out.push({ field: "spec.accessModes", message: "at least one access mode is required" });
  if (spec.persistentVolumeReclaimPolicy === "Recycle") out.push({ field: "spec.persistentVolumeReclaimPolicy", message: 'not supported (deprecated in Kubernetes): use "Delete" or "Retain"' });
  if (spec.volumeMode === "Block") out.push({ field: "spec.volumeMode", message: 'not supported: volumes here are directories; use "Filesystem"' });
  if (spec.mountOptions.length > 0) out.push({ field: "spec.mountOptions", message: "not supported: local and hostPath volumes are bind mounts, which take no mount options" });
  return out;
}

export function validatePersistentVolume(pv: PersistentVolume, old: PersistentVolume | undefined): Violation[] {
  const out = [...validateMeta(pv.metadata, false), ...validateVolumeSpec(pv)];
  if (old?.spec && pv.spec) {
    // A volume's storage is what it is: only its class, reclaim policy, claim and size label may change.
    for (const f of ["hostPath", "local", "nfs", "nodeAffinity", "volumeMode"] as const) {
      if (!same(pv.spec[f], old.spec[f])) out.push({ field: `spec.${f}`, message: "field is immutable" });
    }
  }
  return out;
}

export function validatePersistentVolumeClaim(pvc: PersistentVolumeClaim, old: PersistentVolumeClaim | undefined): Violation[] {
  const out = validateMeta(pvc.metadata, true);
  const spec = pvc.spec;
  if (!spec) return [...out, { field: "spec", message: "required" }];
  if (spec.accessModes.length === 0) out.push({ field: "spec.accessModes", message: "at least one access mode is required" });
  const requests = spec.resources?.requests ?? {};
  if (!requests.storage) out.push({ field: "spec.resources.requests.storage", message: "required: how much storage the claim needs" });
  out.push(...validateResourceList(requests, "spec.resources.requests", { standardNames: ["storage"] }));
  if (Object.keys(spec.resources?.limits ?? {}).length > 0) out.push({ field: "spec.resources.limits", message: "not supported: a claim's size is its request" });
  if (spec.volumeMode === "Block") out.push({ field: "spec.volumeMode", message: 'not supported: volumes here are directories; use "Filesystem"' });
  if (old?.spec) {
    for (const f of ["accessModes", "selector", "volumeMode", "storageClassName"] as const) {
      // A claim created before the default class existed may take one later (Kubernetes does too).
      if (f === "storageClassName" && old.spec.storageClassName === undefined) continue;
      if (!same(spec[f], old.spec[f])) out.push({ field: `spec.${f}`, message: "field is immutable" });
    }
    if (old.spec.volumeName !== "" && spec.volumeName !== old.spec.volumeName) out.push({ field: "spec.volumeName", message: "field is immutable once set" });
    if (!same(requests, old.spec.resources?.requests ?? {})) {
      out.push({ field: "spec.resources.requests", message: "field is immutable: no storage class here allows volume expansion" });
    }
  }
  return out;
}
