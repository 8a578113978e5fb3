import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PersistentVolumeClaimSchema, PersistentVolumeSchema, StorageClassSchema } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { validatePersistentVolume, validatePersistentVolumeClaim, validateStorageClass } from "./storage-validation.ts";

const fields = (v: { field: string; message: string }[]) => v.map((x) => x.field);
const pinned = { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["n1"] }] }] } };

function pv(spec: Record<string, unknown>) {
  return create(PersistentVolumeSchema, { metadata: { name: "v" }, spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], ...spec } });
}

describe("storage validation", () => {
  it("accepts hostPath and local volumes, refuses nfs, a local volume without nodeAffinity, and what no agent acts on", () => {
    expect(validatePersistentVolume(pv({ hostPath: { path: "/srv/a" } }), undefined)).toEqual([]);
    expect(validatePersistentVolume(pv({ local: { path: "/mnt/a" }, nodeAffinity: pinned }), undefined)).toEqual([]);
    const nfs = validatePersistentVolume(pv({ nfs: { server: "10.0.0.1", path: "/export" } }), undefined);
    expect(nfs).toContainEqual({ field: "spec.nfs", message: expect.stringMatching(/no agent of this cluster mounts NFS/) });
    expect(fields(validatePersistentVolume(pv({ local: { path: "/mnt/a" } }), undefined))).toEqual(["spec.nodeAffinity"]);
    expect(fields(validatePersistentVolume(pv({ hostPath: { path: "/a" }, local: { path: "/b" }, nodeAffinity: pinned }), undefined))).toEqual(["spec"]);
    expect(fields(validatePersistentVolume(pv({ hostPath: { path: "/a" }, persistentVolumeReclaimPolicy: "Recycle", volumeMode: "Block", mountOptions: ["ro"] }), undefined))).toEqual([
      "spec.persistentVolumeReclaimPolicy",
      "spec.volumeMode",
      "spec.mountOptions",
    ]);
    const old = pv({ hostPath: { path: "/srv/a" } });
    expect(fields(validatePersistentVolume(pv({ hostPath: { path: "/etc" } }), old))).toEqual(["spec.hostPath"]);
  });

  it("requires a claim's size and access modes, and keeps its spec once made", () => {
    const claim = (spec: Record<string, unknown>) => create(PersistentVolumeClaimSchema, { metadata: { name: "c", namespace: "default" }, spec });
    expect(fields(validatePersistentVolumeClaim(claim({}), undefined))).toEqual(["spec.accessModes", "spec.resources.requests.storage"]);
    const ok = claim({ accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } }, storageClassName: "fast" });
    expect(validatePersistentVolumeClaim(ok, undefined)).toEqual([]);
    const bigger = claim({ accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "2Gi" } }, storageClassName: "slow", volumeName: "pv-1" });
    expect(fields(validatePersistentVolumeClaim(bigger, ok))).toEqual(["spec.storageClassName", "spec.resources.requests"]);
  });

  it("knows its provisioners and refuses expansion, parameters and changes to a class", () => {
    const sc = (init: Record<string, unknown>) => create(StorageClassSchema, { metadata: { name: "x" }, provisioner: "skiff.io/local-path", ...init });
    expect(validateStorageClass(sc({}), undefined)).toEqual([]);
    expect(validateStorageClass(sc({ provisioner: "ebs.csi.aws.com" }), undefined)[0].message).toMatch(/unknown provisioner "ebs.csi.aws.com": this cluster has "skiff.io\/local-path" and "kubernetes.io\/no-provisioner"/);
    expect(fields(validateStorageClass(sc({ allowVolumeExpansion: true, parameters: { a: "b" } }), undefined))).toEqual(["parameters", "allowVolumeExpansion"]);
    expect(fields(validateStorageClass(sc({ reclaimPolicy: "Retain" }), sc({ reclaimPolicy: "Delete" })))).toEqual(["reclaimPolicy"]);
  });
});
