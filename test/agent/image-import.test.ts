// Images without a registry: a real agent (etcd + apiserver, containerd + runc, CNI bridge) with
// `importImages` (the `--import-images PATH` flag of `skiff agent`) runs pods whose images come
// from busybox-static OCI layout tarballs, with imagePullPolicy Never. First PATH is one tarball,
// imported before any pod is synced; then (an agent restart) a directory that is re-scanned, so
// a tarball copied in later is picked up. The node comes from ./cluster.ts: names and the pod
// CIDR are unique to this run; everything is removed afterwards, a crashed run's leftovers first.
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { cstatus, testPod } from "../../internal/agent/testing.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { startCluster, type Cluster } from "./cluster.ts";

let c: Cluster;
let v1: BuiltImage;
let v2: BuiltImage;

beforeAll(async () => {
  c = await startCluster({
    // The first test binds a pod before the agent starts (restartAgent, with importImages).
    startAgent: false,
    agent: {
      resyncMs: 300,
      // A start retry after ErrImageNeverPull would come only after a minute: a pod that runs in
      // time found its image at once (or was nudged by an import).
      crashLoopBackoff: { initialMs: 60_000, maxMs: 60_000 },
    },
  });
  v1 = await buildBusyboxImage(join(c.dir, "v1"), { name: "skiff.test/imported", tag: "v1" });
  v2 = await buildBusyboxImage(join(c.dir, "v2"), { name: "skiff.test/imported", tag: "v2" });
}, 180_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const neverPulled = (podName: string, image: string): Pod =>
  testPod(podName, { nodeName: c.nodeName, containers: [{ name: "app", image, imagePullPolicy: "Never", command: ["sleep", "3600"] }] });

describe("image import (--import-images)", () => {
  it("imports a tarball before syncing pods: a pod with imagePullPolicy Never runs at once", async () => {
    // The pod is bound before the agent starts: its first sync already finds the image.
    await c.pods.create(neverPulled("early", v1.ref));
    expect(await c.runtime.getImage(v1.ref)).toBeUndefined();
    await c.restartAgent({ importImages: v1.tarPath });
    expect((await c.runtime.getImage(v1.ref))?.id).toBe(v1.configDigest);
    const p = await c.waitForPod("early", "Running", (p) => p.status?.phase === "Running");
    expect(cstatus(p)!.imageId).toBe(v1.configDigest);
    expect(cstatus(p)!.restartCount).toBe(0);
  });

  it("a missing image with imagePullPolicy Never: ErrImageNeverPull", async () => {
    await c.pods.create(neverPulled("absent", "skiff.test/absent:v1"));
    const p = await c.waitForPod("absent", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    expect(cstatus(p)!.state!.waiting!.message).toBe('Container image "skiff.test/absent:v1" is not present with pull policy of Never');
    expect(p.status!.phase).toBe("Pending");
  });

  it("a directory is re-scanned: a tarball copied in later starts the pod waiting for it; a broken one is skipped", async () => {
    const watched = join(c.dir, "watched");
    mkdirSync(watched);
    writeFileSync(join(watched, "broken.tar"), "this is not a tar archive");
    copyFileSync(v1.tarPath, join(watched, "v1.tar"));
    await c.restartAgent({ importImages: watched, importRescanMs: 300 });
    // The agent restarted and adopted the first pod; the broken file did not stop it.
    await c.pods.create(neverPulled("late", v2.ref));
    await c.waitForPod("late", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    copyFileSync(v2.tarPath, join(watched, "v2.tar"));
    const p = await c.waitForPod("late", "Running", (p) => p.status?.phase === "Running", 15_000);
    expect(cstatus(p)!.imageId).toBe(v2.configDigest);
    expect((await c.pods.get("default", "early")).status!.phase).toBe("Running");
  });
});
