import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { VolumeSchema } from "../../../../gen/skiff/v1alpha1/pod_pb.js";
import { PersistentVolumeClaimSchema, PersistentVolumeSchema, StorageClassSchema, type PersistentVolume, type PersistentVolumeClaim, type StorageClass } from "../../../../gen/skiff/v1alpha1/storage_pb.js";
import { buildSnapshot } from "../framework.ts";
import { isScheduled, schedule } from "../schedule.ts";
import { makeNode, makePod } from "../testing.ts";
import { defaultFilters } from "./index.ts";
import { volumeBindingFilter, type VolumeLister } from "./volume-binding.ts";

const pinnedTo = (node: string) => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] }] } });

function pv(name: string, node: string, cls = "local-disks", claim?: string): PersistentVolume {
  return create(PersistentVolumeSchema, {
    metadata: { name },
    spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], storageClassName: cls, local: { path: `/mnt/${name}` }, nodeAffinity: pinnedTo(node), claimRef: claim ? { namespace: "default", name: claim } : undefined },
    status: { phase: claim ? "Bound" : "Available" },
  });
}

function pvc(name: string, cls: string, volumeName = ""): PersistentVolumeClaim {
  return create(PersistentVolumeClaimSchema, {
    metadata: { name, namespace: "default", uid: `uid-${name}` },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } }, storageClassName: cls, volumeName },
  });
}

const sc = (name: string, mode: string, provisioner = "kubernetes.io/no-provisioner"): StorageClass => create(StorageClassSchema, { metadata: { name }, provisioner, volumeBindingMode: mode });

function lister(claims: PersistentVolumeClaim[], volumes: PersistentVolume[], classes: StorageClass[]): VolumeLister {
  return {
    claim: (ns, n) => claims.find((c) => c.metadata!.namespace === ns && c.metadata!.name === n),
    volume: (n) => volumes.find((v) => v.metadata!.name === n),
    storageClass: (n) => classes.find((c) => c.metadata!.name === n),
    volumes: () => volumes,
  };
}

function podUsing(...claims: string[]) {
  const p = makePod("app");
  p.spec!.volumes = claims.map((c) => create(VolumeSchema, { name: c, persistentVolumeClaim: { claimName: c } }));
  return p;
}

const nodes = [makeNode("n1"), makeNode("n2"), makeNode("n3")];
const run = (l: VolumeLister, pod = podUsing("data")) => schedule(pod, buildSnapshot(nodes), { filters: [...defaultFilters, volumeBindingFilter(l)] });

describe("VolumeBinding filter", () => {
  it("places a pod whose claim is bound on the node its volume is pinned to", () => {
    const r = run(lister([pvc("data", "local-disks", "disk-n2")], [pv("disk-n2", "n2", "local-disks", "data")], []));
    expect(isScheduled(r) && r.node).toBe("n2");
  });

  it("says why a pod cannot be placed: a missing claim, an unbound Immediate claim, a volume pinned elsewhere", () => {
    const missing = run(lister([], [], []));
    expect(!isScheduled(missing) && missing.message).toBe('0/3 nodes are available: 3 persistentvolumeclaim "data" not found.');
    const immediate = run(lister([pvc("data", "fast")], [], [sc("fast", "Immediate")]));
    expect(!isScheduled(immediate) && immediate.message).toMatch(/3 pod has unbound immediate PersistentVolumeClaims/);
    const offNode = schedule(podUsing("data"), buildSnapshot([makeNode("n1")]), { filters: [volumeBindingFilter(lister([pvc("data", "x", "disk-n2")], [pv("disk-n2", "n2", "x", "data")], []))] });
    expect(!isScheduled(offNode) && offNode.message).toBe("0/1 nodes are available: 1 node(s) had volume node affinity conflict.");
  });

  it("with WaitForFirstConsumer, allows only nodes that have a fitting free volume (static) or any node (local-path)", () => {
    const statics = lister([pvc("data", "local-disks")], [pv("disk-n3", "n3"), pv("taken-n1", "n1", "local-disks", "someone-else")], [sc("local-disks", "WaitForFirstConsumer")]);
    const r = run(statics);
    expect(isScheduled(r) && r.node).toBe("n3");
    const none = run(lister([pvc("data", "local-disks")], [], [sc("local-disks", "WaitForFirstConsumer")]));
    expect(!isScheduled(none) && none.message).toBe("0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind.");
    const provisioned = run(lister([pvc("data", "local-path")], [], [sc("local-path", "WaitForFirstConsumer", "skiff.io/local-path")]));
    expect(isScheduled(provisioned)).toBe(true);
  });
});
