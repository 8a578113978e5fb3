import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { kindByName } from "../../api/registry.ts";
import { describeObject } from "./describe.ts";
import { formatObjectsTable } from "./get-table.ts";

const now = Date.now();
const created = timestampFromMs(now - 120_000);
const kind = (k: string) => kindByName(k)!;

const sc = create(kind("StorageClass").schema, {
  metadata: { name: "local-path", creationTimestamp: created, annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
  provisioner: "skiff.io/local-path",
  reclaimPolicy: "Delete",
  volumeBindingMode: "WaitForFirstConsumer",
});
const pv = create(kind("PersistentVolume").schema, {
  metadata: { name: "pvc-1234", creationTimestamp: created, finalizers: ["kubernetes.io/pv-protection"] },
  spec: {
    capacity: { storage: "1Gi" },
    accessModes: ["ReadWriteOnce"],
    persistentVolumeReclaimPolicy: "Delete",
    storageClassName: "local-path",
    volumeMode: "Filesystem",
    hostPath: { path: "/var/lib/skiff/storage/pvc-1234_default_data", type: "DirectoryOrCreate" },
    claimRef: { namespace: "default", name: "data" },
    nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["n1"] }] }] } },
  },
  status: { phase: "Bound" },
});
const pvc = create(kind("PersistentVolumeClaim").schema, {
  metadata: { name: "data", namespace: "default", creationTimestamp: created },
  spec: { accessModes: ["ReadWriteOnce"], storageClassName: "local-path", volumeName: "pvc-1234", volumeMode: "Filesystem", resources: { requests: { storage: "1Gi" } } },
  status: { phase: "Bound", capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"] },
});

describe("storage kinds in the CLI", () => {
  it("get prints Kubernetes' columns for sc, pv and pvc", () => {
    expect(formatObjectsTable(kind("StorageClass"), [sc], { now }).split("\n")).toEqual([
      expect.stringMatching(/^NAME\s+PROVISIONER\s+RECLAIMPOLICY\s+VOLUMEBINDINGMODE\s+ALLOWVOLUMEEXPANSION\s+AGE$/),
      expect.stringMatching(/^local-path \(default\)\s+skiff\.io\/local-path\s+Delete\s+WaitForFirstConsumer\s+false\s+2m$/),
      "",
    ]);
    expect(formatObjectsTable(kind("PersistentVolume"), [pv], { now })).toMatch(/^NAME\s+CAPACITY\s+ACCESS MODES\s+RECLAIM POLICY\s+STATUS\s+CLAIM\s+STORAGECLASS\s+REASON\s+AGE\npvc-1234\s+1Gi\s+RWO\s+Delete\s+Bound\s+default\/data\s+local-path\s+2m\n$/);
    expect(formatObjectsTable(kind("PersistentVolumeClaim"), [pvc], { now })).toMatch(/^NAME\s+STATUS\s+VOLUME\s+CAPACITY\s+ACCESS MODES\s+STORAGECLASS\s+AGE\ndata\s+Bound\s+pvc-1234\s+1Gi\s+RWO\s+local-path\s+2m\n$/);
  });

  it("describe shows each kind's essentials, and a claim's pods", () => {
    expect(describeObject(kind("StorageClass"), sc, { events: [] }, now)).toMatch(/IsDefaultClass:\s+Yes\nProvisioner:\s+skiff\.io\/local-path\n[\s\S]*VolumeBindingMode:\s+WaitForFirstConsumer/);
    const pvText = describeObject(kind("PersistentVolume"), pv, { events: [] }, now);
    expect(pvText).toMatch(/Claim:\s+default\/data/);
    expect(pvText).toMatch(/Node Affinity:\s+Term 0: kubernetes\.io\/hostname in \[n1\]/);
    expect(pvText).toMatch(/Source:\s*\n\s+Type:\s+HostPath[^\n]*\n\s+Path:\s+\/var\/lib\/skiff\/storage\/pvc-1234_default_data/);
    const pvcText = describeObject(kind("PersistentVolumeClaim"), pvc, { events: [], pods: [{ metadata: { name: "web-0" } } as never] }, now);
    expect(pvcText).toMatch(/Volume:\s+pvc-1234/);
    expect(pvcText).toMatch(/Used By:\s+web-0/);
  });
});
