// PersistentVolumes on real nodes (scheduler, controller-manager and two agents on containerd):
// seed 003's check — a file written by pod A to a hostPath-backed static volume is read by pod
// B through the same claim, both on the node the volume's nodeAffinity names — and the built-in
// local-path provisioner: a claim provisioned on the node the scheduler picked, its data kept
// across pods, the claim kept while a pod uses it, then the volume and its directory removed.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { PersistentVolumeClaimSchema, PersistentVolumeSchema, type PersistentVolume, type PersistentVolumeClaim } from "../../gen/skiff/v1alpha1/storage_pb.js";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;
let pvs: ResourceClient<PersistentVolume>;
let pvcs: ResourceClient<PersistentVolumeClaim>;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 2, scheduler: true, controllers: true });
  pvs = c.cp.client("PersistentVolume");
  pvcs = c.cp.client("PersistentVolumeClaim");
});

afterAll(async () => {
  await c?.stop();
});

const gone = async (read: () => Promise<unknown>) => {
  try {
    await read();
    return false;
  } catch (err) {
    if (ConnectError.from(err).code === Code.NotFound) return true;
    throw err;
  }
};

/** A pod (placed by the scheduler) running `script` with the claim mounted at /data. */
async function podWithClaim(name: string, claim: string, script: string, readOnly = false) {
  await c.createPod(undefined, name, {
    restartPolicy: "Never",
    containers: [{ name: "main", command: ["sh", "-c", script], volumeMounts: [{ name: "data", mountPath: "/data" }] }],
    volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim, readOnly } }],
  } as never);
}

async function deletePod(name: string) {
  await c.pods.delete("default", name);
  await waitFor(`pod ${name} gone`, () => gone(() => c.pods.get("default", name)), 90_000);
}

/** Waits for a pod's phase; on timeout, says what the pod and its events looked like. */
async function phase(name: string, want: string, timeoutMs = 120_000) {
  try {
    return await c.waitForPod(name, want, (p) => p.status?.phase === want, timeoutMs);
  } catch (err) {
    const pod = await c.pods.get("default", name).catch(() => undefined);
    const events = (await c.cp.client<Event>("Event").list("default")).items.filter((e) => e.involvedObject?.name === name || e.involvedObject?.kind === "PersistentVolumeClaim");
    throw new Error(`${String(err)}\npod: ${JSON.stringify({ node: pod?.spec?.nodeName, status: pod?.status }, (_k, v) => (typeof v === "bigint" ? String(v) : v))}\nevents: ${events.map((e) => `${e.reason}: ${e.message}`).join("\n")}`, { cause: err });
  }
}
const succeeded = (name: string) => phase(name, "Succeeded");

it("seed 003: pod A writes to a hostPath volume through a claim, pod B reads it, both on the volume's node", async () => {
  const target = c.nodes[1];
  const dir = join(c.dir, "static-volume");
  mkdirSync(dir, { recursive: true });
  await pvs.create(
    create(PersistentVolumeSchema, {
      metadata: { name: "seed-003" },
      spec: {
        capacity: { storage: "1Gi" },
        accessModes: ["ReadWriteOnce"],
        storageClassName: "manual",
        hostPath: { path: dir, type: "Directory" },
        nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [target.name] }] }] } },
      },
    }),
  );
  await pvcs.create(create(PersistentVolumeClaimSchema, { metadata: { name: "shared", namespace: "default" }, spec: { accessModes: ["ReadWriteOnce"], storageClassName: "manual", resources: { requests: { storage: "1Gi" } } } }));

  await podWithClaim("writer", "shared", "echo written-by-pod-a > /data/hello");
  const a = await succeeded("writer");
  expect(a.spec!.nodeName).toBe(target.name);
  expect(readFileSync(join(dir, "hello"), "utf8")).toBe("written-by-pod-a\n");
  await deletePod("writer");

  await podWithClaim("reader", "shared", "cat /data/hello > /data/seen-by-pod-b");
  const b = await succeeded("reader");
  expect(b.spec!.nodeName).toBe(target.name);
  expect(readFileSync(join(dir, "seen-by-pod-b"), "utf8")).toBe("written-by-pod-a\n");
  await deletePod("reader");

  // readOnly on the pod's volume: the container cannot write.
  await podWithClaim("read-only", "shared", "echo x > /data/must-not-exist", true);
  const ro = await phase("read-only", "Failed");
  expect(ro.spec!.nodeName).toBe(target.name);
  expect(existsSync(join(dir, "must-not-exist"))).toBe(false);
  await deletePod("read-only");
}, 600_000);

it("a local-path claim is provisioned on the scheduler's node, keeps its data across pods, and goes with its directory once no pod uses it", async () => {
  const stored = await pvcs.create(create(PersistentVolumeClaimSchema, { metadata: { name: "app-data", namespace: "default" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } } }));
  expect(stored.spec!.storageClassName).toBe("local-path"); // the default class, made by the controller-manager

  await podWithClaim("first", "app-data", "echo kept > /data/state");
  const first = await succeeded("first");
  const node = c.node(first.spec!.nodeName);
  const claim = await waitFor("claim bound", async () => {
    const got = await pvcs.get("default", "app-data");
    return got.status?.phase === "Bound" && got;
  }, 30_000);
  expect(claim.metadata!.annotations["volume.kubernetes.io/selected-node"]).toBe(node.name);
  const pv = await pvs.get("", claim.spec!.volumeName);
  expect(pv.spec!.nodeAffinity!.required!.nodeSelectorTerms[0].matchExpressions[0].values).toEqual([node.name]);
  const dir = join(node.rootDir, "storage", `${pv.metadata!.name}_default_app-data`);
  expect(pv.spec!.hostPath!.path).toBe(dir);
  expect(readFileSync(join(dir, "state"), "utf8")).toBe("kept\n");
  await deletePod("first");

  // A new pod with the claim lands on the same node and finds the data; it stays running.
  await podWithClaim("second", "app-data", "cat /data/state > /data/read-again && sleep 3600");
  const second = await c.waitForRunning("second", 120_000);
  expect(second.spec!.nodeName).toBe(node.name);
  await waitFor("second pod read the data", () => existsSync(join(dir, "read-again")) && readFileSync(join(dir, "read-again"), "utf8") === "kept\n", 30_000);

  // In use: the claim waits for its pod.
  expect((await pvcs.delete("default", "app-data")).deleted).toBe(false);
  const events = c.cp.client<Event>("Event");
  await waitFor("WaitingForPods event", async () => (await events.list("default")).items.some((e) => e.reason === "WaitingForPods" && e.involvedObject?.name === "app-data"), 30_000);
  expect((await pvcs.get("default", "app-data")).metadata!.deletionTimestamp).toBeDefined();
  expect(existsSync(dir)).toBe(true);

  await deletePod("second");
  await waitFor("claim gone", () => gone(() => pvcs.get("default", "app-data")), 60_000);
  await waitFor("volume gone", () => gone(() => pvs.get("", pv.metadata!.name)), 60_000);
  expect(existsSync(dir)).toBe(false);
}, 600_000);

it("a pod whose claim does not exist stays Pending with a FailedScheduling event saying so", async () => {
  await podWithClaim("orphan", "no-such-claim", "true");
  const events = c.cp.client<Event>("Event");
  const ev = await waitFor("FailedScheduling", async () => (await events.list("default")).items.find((e) => e.reason === "FailedScheduling" && e.involvedObject?.name === "orphan"), 30_000);
  expect(ev.message).toMatch(/persistentvolumeclaim "no-such-claim" not found/);
  expect((await c.pods.get("default", "orphan")).spec!.nodeName).toBe("");
  await deletePod("orphan");
});
