import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { VolumeSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { PersistentVolumeClaimSchema, PersistentVolumeSchema, type PersistentVolume, type PersistentVolumeClaim } from "../../../gen/skiff/v1alpha1/storage_pb.js";
import { LOCAL_PATH_CLEANUP_FINALIZER, LOCAL_PATH_DIR_ANNOTATION, SELECTED_NODE_ANNOTATION } from "../../api/storage.ts";
import type { ResourceClient } from "../../client/resource-client.ts";
import { gone, startTestCluster, testNode, testPod, waitFor, type TestCluster } from "../node/testing.ts";
import { createVolumeController } from "./controller.ts";

let cluster: TestCluster;
let pvs: ResourceClient<PersistentVolume>;
let pvcs: ResourceClient<PersistentVolumeClaim>;

beforeEach(async () => {
  cluster = await startTestCluster();
  pvs = cluster.client("PersistentVolume");
  pvcs = cluster.client("PersistentVolumeClaim");
});
afterEach(() => cluster.close());

function volume(name: string, size: string, opts: { cls?: string; modes?: string[]; reclaim?: string; claim?: string; labels?: Record<string, string> } = {}): PersistentVolume {
  return create(PersistentVolumeSchema, {
    metadata: { name, labels: opts.labels ?? {} },
    spec: {
      capacity: { storage: size },
      accessModes: opts.modes ?? ["ReadWriteOnce"],
      storageClassName: opts.cls ?? "manual",
      persistentVolumeReclaimPolicy: opts.reclaim ?? "Retain",
      hostPath: { path: `/srv/${name}` },
      claimRef: opts.claim ? { namespace: "default", name: opts.claim } : undefined,
    },
  });
}

function claim(name: string, size: string, opts: { cls?: string; modes?: string[]; volumeName?: string; annotations?: Record<string, string> } = {}): PersistentVolumeClaim {
  return create(PersistentVolumeClaimSchema, {
    metadata: { name, namespace: "default", annotations: opts.annotations ?? {} },
    spec: {
      accessModes: opts.modes ?? ["ReadWriteOnce"],
      resources: { requests: { storage: size } },
      storageClassName: opts.cls ?? "manual",
      volumeName: opts.volumeName ?? "",
    },
  });
}

const boundClaim = (name: string) => waitFor(`claim ${name} bound`, async () => {
  const c = await pvcs.get("default", name);
  return c.status?.phase === "Bound" && c;
});
const volumePhase = (name: string, phase: string) => waitFor(`volume ${name} ${phase}`, async () => {
  const v = await pvs.get("", name);
  return v.status?.phase === phase && v;
});

// The class "manual" has no StorageClass object (static volumes only): Kubernetes' message.
const unboundEvent = (claimName: string) =>
  waitFor(`no-volume event of ${claimName}`, async () =>
    (await cluster.client("Event").list("default")).items.some((e: any) => e.involvedObject.name === claimName && e.reason === "ProvisioningFailed" && /storageclass "manual" not found/.test(e.message)),
  );

describe("PersistentVolume controller", () => {
  it("binds a claim to the smallest volume of its class with the capacity and access modes it asks for", async () => {
    for (const v of [
      volume("big", "10Gi"),
      volume("small", "1Gi"),
      volume("mid", "3Gi"),
      volume("other-class", "2Gi", { cls: "fast" }),
      volume("read-only-many", "2Gi", { modes: ["ReadOnlyMany"] }),
    ]) await pvs.create(v);
    await cluster.start(createVolumeController(cluster.ctx));
    await volumePhase("small", "Available");
    await pvcs.create(claim("data", "2Gi"));

    const bound = await boundClaim("data");
    expect(bound.spec!.volumeName).toBe("mid");
    expect(bound.status!.capacity.storage).toBe("3Gi");
    expect(bound.status!.accessModes).toEqual(["ReadWriteOnce"]);
    const pv = await volumePhase("mid", "Bound");
    expect(pv.spec!.claimRef).toMatchObject({ namespace: "default", name: "data", uid: bound.metadata!.uid });
    for (const n of ["big", "small", "other-class", "read-only-many"]) expect((await pvs.get("", n)).status!.phase).toBe("Available");
  });

  it("leaves a claim Pending when no volume fits, and binds it once one appears", async () => {
    await pvs.create(volume("tiny", "100Mi"));
    await cluster.start(createVolumeController(cluster.ctx));
    await pvcs.create(claim("later", "1Gi"));
    await unboundEvent("later");
    expect((await pvcs.get("default", "later")).status!.phase).toBe("Pending");
    await pvs.create(volume("enough", "1Gi"));
    expect((await boundClaim("later")).spec!.volumeName).toBe("enough");
  });

  it("a Retain volume stays Released after its claim goes and is not bound again", async () => {
    await pvs.create(volume("kept", "1Gi"));
    await cluster.start(createVolumeController(cluster.ctx));
    await pvcs.create(claim("first", "1Gi"));
    await boundClaim("first");
    await pvcs.delete("default", "first");
    await waitFor("claim gone", () => gone(pvcs, "default", "first"));
    await volumePhase("kept", "Released");

    await pvcs.create(claim("second", "1Gi"));
    await unboundEvent("second");
    expect((await pvcs.get("default", "second")).status!.phase).toBe("Pending");
    expect((await pvs.get("", "kept")).status!.phase).toBe("Released");
    await pvs.create(volume("fresh", "1Gi"));
    expect((await boundClaim("second")).spec!.volumeName).toBe("fresh");
  });

  it("keeps a claim used by a pod until the pod is gone, and a bound volume until its claim is gone", async () => {
    await pvs.create(volume("used", "1Gi"));
    await cluster.start(createVolumeController(cluster.ctx));
    await pvcs.create(claim("busy", "1Gi"));
    await boundClaim("busy");
    const podSpec = testPod("user");
    podSpec.spec!.volumes = [create(VolumeSchema, { name: "data", persistentVolumeClaim: { claimName: "busy" } })];
    const pods = cluster.client<Pod>("Pod");
    await pods.create(podSpec);

    expect((await pvs.delete("", "used")).deleted).toBe(false);
    expect((await pvcs.delete("default", "busy")).deleted).toBe(false);
    await waitFor("WaitingForPods event", async () => (await cluster.client("Event").list("default")).items.some((e: any) => e.reason === "WaitingForPods" && e.involvedObject.name === "busy"));
    const held = await pvcs.get("default", "busy");
    expect(held.metadata!.deletionTimestamp).toBeDefined();
    expect((await pvs.get("", "used")).status!.phase).toBe("Bound");

    await pods.delete("default", "user");
    await waitFor("claim gone after its pod", () => gone(pvcs, "default", "busy"));
    await waitFor("volume gone after its claim", () => gone(pvs, "", "used"));
  });

  it("honours a volume pre-bound by claimRef and a claim naming its volume", async () => {
    await pvs.create(volume("reserved", "5Gi", { claim: "wants-reserved" }));
    await pvs.create(volume("named", "5Gi"));
    await pvs.create(volume("smaller", "1Gi"));
    await cluster.start(createVolumeController(cluster.ctx));
    await pvcs.create(claim("other", "1Gi"));
    expect((await boundClaim("other")).spec!.volumeName).toBe("smaller");
    await pvcs.create(claim("wants-reserved", "1Gi"));
    await pvcs.create(claim("by-name", "1Gi", { volumeName: "named" }));
    expect((await boundClaim("wants-reserved")).spec!.volumeName).toBe("reserved");
    expect((await boundClaim("by-name")).spec!.volumeName).toBe("named");
    expect((await volumePhase("named", "Bound")).spec!.claimRef!.name).toBe("by-name");

    // A claim naming a volume that does not serve it (another class) is not bound to it.
    await pvs.create(volume("fast-one", "5Gi", { cls: "fast" }));
    await pvcs.create(claim("wrong-class", "1Gi", { volumeName: "fast-one" }));
    await waitFor("VolumeMismatch event", async () => (await cluster.client("Event").list("default")).items.some((e: any) => e.reason === "VolumeMismatch" && e.involvedObject.name === "wrong-class"));
    expect((await pvcs.get("default", "wrong-class")).status!.phase).toBe("Pending");
    expect((await pvs.get("", "fast-one")).spec!.claimRef).toBeUndefined();
  });

  it("a Delete volume it did not provision fails rather than losing data silently", async () => {
    await pvs.create(volume("static", "1Gi", { reclaim: "Delete" }));
    await cluster.start(createVolumeController(cluster.ctx));
    await pvcs.create(claim("c", "1Gi"));
    await boundClaim("c");
    await pvcs.delete("default", "c");
    const failed = await volumePhase("static", "Failed");
    expect(failed.status!.message).toMatch(/deletes only the volumes it provisioned/);
  });

  it("makes the default local-path class and provisions a claim of it on the selected node, deleting the volume with the claim", async () => {
    const nodes = cluster.client<Node>("Node");
    const node = testNode("n1", { ready: "True" });
    node.metadata!.annotations[LOCAL_PATH_DIR_ANNOTATION] = "/var/lib/skiff/storage";
    node.metadata!.labels["kubernetes.io/hostname"] = "n1";
    await nodes.create(node);
    await cluster.start(createVolumeController(cluster.ctx));
    const sc = await waitFor("local-path class", () => cluster.client("StorageClass").get("", "local-path"));
    expect(sc).toMatchObject({ provisioner: "skiff.io/local-path", volumeBindingMode: "WaitForFirstConsumer", reclaimPolicy: "Delete" });

    // No class named: the default one is filled in; no node selected yet: it waits.
    const pending = create(PersistentVolumeClaimSchema, { metadata: { name: "web-data", namespace: "default" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } } });
    const stored = await pvcs.create(pending);
    expect(stored.spec!.storageClassName).toBe("local-path");
    await waitFor("WaitForFirstConsumer event", async () => (await cluster.client("Event").list("default")).items.some((e: any) => e.reason === "WaitForFirstConsumer"));
    expect((await pvs.list("")).items).toHaveLength(0);

    stored.metadata!.annotations[SELECTED_NODE_ANNOTATION] = "n1";
    await pvcs.update(stored);
    const bound = await boundClaim("web-data");
    const pv = await pvs.get("", bound.spec!.volumeName);
    expect(pv.metadata!.name).toBe(`pvc-${stored.metadata!.uid}`);
    expect(pv.spec!.hostPath!.path).toBe(`/var/lib/skiff/storage/pvc-${stored.metadata!.uid}_default_web-data`);
    expect(pv.spec!.nodeAffinity!.required!.nodeSelectorTerms[0].matchExpressions[0]).toMatchObject({ key: "kubernetes.io/hostname", operator: "In", values: ["n1"] });
    expect(pv.spec!.capacity.storage).toBe("1Gi");
    expect(pv.spec!.persistentVolumeReclaimPolicy).toBe("Delete");

    await pvcs.delete("default", "web-data");
    // Deleted, waiting only for its node's agent to remove the directory.
    const deleting = await waitFor("volume being deleted", async () => {
      const v = await pvs.get("", pv.metadata!.name);
      return v.metadata!.deletionTimestamp && v.metadata!.finalizers.length === 1 && v;
    });
    expect(deleting.metadata!.finalizers).toEqual([LOCAL_PATH_CLEANUP_FINALIZER]);
  });
});
