// Snapshot and restore on a real cluster (etcd over TLS, apiserver, scheduler, controllers, one
// real node whose agent is a `skiff agent` process): a Deployment's namespace deleted after a
// snapshot comes back with the restore and its pods run again on the node; a pod created after
// the snapshot is not in the restored state, so the agent stops and removes it. The restore is
// what `skiff up --cluster-reset` does: the apiserver down, etcd's data replaced by
// `etcdctl snapshot restore` (the old dir moved aside), the revision carried past the old one,
// the apiserver up again. The agent keeps running throughout and learns the restored state by
// relisting (its resource versions are all "too old" now).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { NamespaceSchema, type Namespace } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { bumpRevision } from "../../internal/etcdsnapshot/bump.ts";
import { restoreSnapshot } from "../../internal/etcdsnapshot/restore.ts";
import { listSnapshots, saveSnapshot } from "../../internal/etcdsnapshot/snapshot.ts";
import { agentLogTail, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;
beforeAll(async () => {
  c = await startMultiNode({ nodes: 1, scheduler: true, controllers: true });
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

const gone = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

/** uids of the pods whose containers are running on the node. */
async function runningPodUids(): Promise<Set<string>> {
  const list = await c.nodes[0].runtime.listContainers();
  return new Set(list.filter((x) => x.state === "running").map((x) => x.podUid));
}

it("a namespace deleted after a snapshot is back with its Deployment running after a restore, and a pod made after it is removed from the node", async () => {
  const node = c.nodes[0];
  await c.cp.client<Namespace>("Namespace").create(create(NamespaceSchema, { metadata: { name: "shop" } }));
  const template = c.pod(node, "unused").spec!;
  template.nodeName = "";
  await c.cp.client<Deployment>("Deployment").create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "shop" },
      spec: { replicas: 2, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: template } },
    }),
  );
  const shopPods = c.cp.client<Pod>("Pod");
  const before = await waitFor("2 Running pods of shop/web", async () => {
    const items = (await shopPods.list("shop", { labelSelector: "app=web" })).items.filter((p) => p.status?.phase === "Running");
    return items.length === 2 ? items : undefined;
  }, 120_000);

  const dir = join(c.dir, "snapshots");
  const snap = await saveSnapshot({ endpoints: [c.cp.etcd.endpoint], tls: c.cp.etcd.tls }, dir, "before", "test");
  expect((await listSnapshots(dir)).map((s) => s.file)).toEqual([snap.file]);
  expect(Number(snap.revision)).toBeGreaterThan(0);

  // After the snapshot: a pod on the node, and the namespace deleted (its pods' containers go).
  await c.createPod(node, "late");
  const late = await c.waitForRunning("late");
  await c.cp.client<Namespace>("Namespace").delete("", "shop");
  await waitFor("namespace shop gone", () => c.cp.client<Namespace>("Namespace").get("", "shop").then(() => false, gone), 120_000);
  await waitFor("shop's containers gone from the node", async () => {
    const uids = await runningPodUids();
    return before.every((p) => !uids.has(p.metadata!.uid));
  }, 60_000);

  let previousData: string | undefined;
  await c.cp.restartApiServer(async () => {
    await c.cp.etcd.kill();
    const restored = await restoreSnapshot(join(dir, snap.file), { dataDir: c.cp.etcd.dataDir, memberName: c.cp.etcd.memberName, peerUrl: c.cp.etcd.peerUrl });
    previousData = restored.movedAside;
    expect(restored.previousRevision).toBeGreaterThan(Number(snap.revision));
    await c.cp.etcd.restart();
    await bumpRevision({ endpoints: [c.cp.etcd.endpoint], tls: c.cp.etcd.tls }, restored.previousRevision!);
  });
  expect(previousData && existsSync(previousData)).toBeTruthy();

  // The restored API has the namespace, the Deployment and its two pods again ...
  await c.cp.client<Namespace>("Namespace").get("", "shop");
  await c.cp.client<Deployment>("Deployment").get("shop", "web");
  const restoredPods = (await shopPods.list("shop", { labelSelector: "app=web" })).items;
  expect(restoredPods.map((p) => p.metadata!.uid).sort()).toEqual(before.map((p) => p.metadata!.uid).sort());
  // ... whose containers run on the node again, and "late" is neither in the API nor on the node.
  await expect(c.pods.get("default", "late")).rejects.toSatisfy(gone);
  await waitFor(`the node runs shop's pods again and not "late"\n${agentLogTail(node)}`, async () => {
    const uids = await runningPodUids();
    return before.every((p) => uids.has(p.metadata!.uid)) && !uids.has(late.metadata!.uid);
  }, 120_000);
  await waitFor("no container of late left at all", async () => (await node.runtime.listContainers()).every((x) => x.podUid !== late.metadata!.uid), 60_000);
  // And the restored cluster keeps working: the Deployment scales.
  const dep = await c.cp.client<Deployment>("Deployment").get("shop", "web");
  dep.spec!.replicas = 3;
  await c.cp.client<Deployment>("Deployment").update(dep);
  await waitFor("3 Running pods of shop/web", async () => {
    const items = (await shopPods.list("shop", { labelSelector: "app=web" })).items.filter((p) => p.status?.phase === "Running");
    return items.length === 3;
  }, 120_000);
}, 600_000);
