// The garbage collector on a real etcd control plane: Background, Foreground and Orphan cascades
// over Deployment → ReplicaSet → Pod chains made by hand (no Deployment or ReplicaSet controller
// runs, so nothing but the collector deletes or changes them).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createGarbageCollector, FOREGROUND_FINALIZER } from "../../internal/controller/gc/gc.ts";
import { createChain } from "../../internal/controller/gc/testing-objects.ts";
import { controllerHarness, gone, sleep, waitFor, type ControllerHarness } from "../../internal/controller/node/testing.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let h: ControllerHarness;

beforeAll(async () => {
  cp = await startControlPlane();
  h = controllerHarness(cp.transport);
  await h.start(createGarbageCollector(h.ctx));
});

afterAll(async () => {
  await h?.close();
  await cp?.stop();
});

const deployments = () => cp.client<Deployment>("Deployment");
const replicaSets = () => cp.client<ReplicaSet>("ReplicaSet");
const pods = () => cp.client<Pod>("Pod");
const podNames = async () => (await pods().list("default")).items.map((p) => p.metadata!.name).sort();

/** Records the order in which objects of the chain disappear, from watches. */
function watchDeletions(): { order: string[]; stop(): void } {
  const order: string[] = [];
  const abort = new AbortController();
  for (const [kind, client] of [["Deployment", deployments()], ["ReplicaSet", replicaSets()], ["Pod", pods()]] as const) {
    void (async () => {
      try {
        for await (const ev of (client as any).watch("default", { signal: abort.signal })) {
          if (ev.type === "DELETED") order.push(`${kind}/${ev.object.metadata.name}`);
        }
      } catch {
        /* aborted */
      }
    })();
  }
  return { order, stop: () => abort.abort() };
}

describe("garbage collector on etcd", () => {
  it("background: deleting the Deployment takes its ReplicaSet, then their pods", async () => {
    await createChain(cp);
    await sleep(300);
    expect(await podNames()).toEqual(["web-1-a", "web-1-b"]);
    await deployments().delete("default", "web");
    await waitFor("rs collected", () => gone(replicaSets(), "default", "web-1"));
    await waitFor("pods collected", async () => (await podNames()).length === 0);
  });

  it("foreground: pods go first, then the ReplicaSet, then the Deployment", async () => {
    await createChain(cp);
    await sleep(200);
    const w = watchDeletions();
    await sleep(200);
    await deployments().delete("default", "web", { propagationPolicy: "Foreground" });
    const d = await deployments().get("default", "web");
    expect(d.metadata?.deletionTimestamp).toBeDefined();
    expect(d.metadata?.finalizers).toEqual([FOREGROUND_FINALIZER]);
    await waitFor("deployment gone", () => gone(deployments(), "default", "web"));
    await waitFor("all deletions seen", () => w.order.length === 4);
    w.stop();
    expect(w.order.slice(0, 2).sort()).toEqual(["Pod/web-1-a", "Pod/web-1-b"]);
    expect(w.order.slice(2)).toEqual(["ReplicaSet/web-1", "Deployment/web"]);
  });

  it("orphan: the ReplicaSet goes, its pods stay without the reference", async () => {
    const { rs } = await createChain(cp);
    await replicaSets().delete("default", "web-1", { propagationPolicy: "Orphan" });
    await waitFor("rs gone", () => gone(replicaSets(), "default", "web-1"));
    await sleep(500);
    const left = (await pods().list("default")).items;
    expect(left.map((p) => p.metadata!.name).sort()).toEqual(["web-1-a", "web-1-b"]);
    for (const p of left) {
      expect(p.metadata!.ownerReferences.filter((r) => r.uid === rs.metadata!.uid)).toEqual([]);
      expect(p.metadata!.deletionTimestamp).toBeUndefined();
    }
    // The Deployment, whose ReplicaSet was deleted by hand, is untouched.
    expect((await deployments().get("default", "web")).metadata?.deletionTimestamp).toBeUndefined();
    // Orphaned for good: deleting the Deployment now leaves the pods alone.
    await deployments().delete("default", "web");
    await waitFor("deployment gone", () => gone(deployments(), "default", "web"));
    await sleep(500);
    expect(await podNames()).toEqual(["web-1-a", "web-1-b"]);
    for (const p of left) await pods().delete("default", p.metadata!.name);
  });

  it("a collector started after the owner went collects what it left behind", async () => {
    await h.close();
    await createChain(cp);
    await replicaSets().delete("default", "web-1"); // nobody collects: the pods stay
    await sleep(300);
    expect(await podNames()).toEqual(["web-1-a", "web-1-b"]);
    h = controllerHarness(cp.transport);
    await h.start(createGarbageCollector(h.ctx));
    await waitFor("pods collected", async () => (await podNames()).length === 0);
    // The Deployment still exists: only the dangling side was collected.
    expect(await gone(deployments(), "default", "web")).toBe(false);
    await deployments().delete("default", "web");
  });
});
