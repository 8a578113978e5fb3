// Images without a registry: a real agent (etcd + apiserver, containerd + runc, CNI bridge) with
// `importImages` (the `--import-images PATH` flag of `skiff agent`) runs pods whose images come
// from busybox-static OCI layout tarballs, with imagePullPolicy Never. First PATH is one tarball,
// imported before any pod is synced; then (an agent restart) a directory that is re-scanned, so
// a tarball copied in later is picked up. Names and the pod CIDR are unique to this run;
// everything is removed afterwards, a crashed run's leftovers first.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent, type Agent, type AgentOptions } from "../../internal/agent/agent.ts";
import { createCniNetwork, type PodNetwork } from "../../internal/agent/network.ts";
import { cstatus, testPod, waitFor } from "../../internal/agent/testing.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/index.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "../network/leftovers.ts";

const NODE = "import-node";

let cp: ControlPlane;
let ctrd: ContainerdServer;
let runtime: ContainerdRuntime;
let network: PodNetwork;
let agent: Agent | undefined;
let base: Omit<AgentOptions, "importImages">;
let pods: ResourceClient<Pod>;
let v1: BuiltImage;
let v2: BuiltImage;
let dir: string;
let name: string;

beforeAll(async () => {
  await sweepCrashedRuns();
  name = runName();
  const cidr = await freePodCidr();
  dir = mkdtempSync(join(tmpdir(), "skiff-image-import-"));
  [cp, ctrd] = await Promise.all([startControlPlane(), startContainerd()]);
  v1 = await buildBusyboxImage(join(dir, "v1"), { name: "skiff.test/imported", tag: "v1" });
  v2 = await buildBusyboxImage(join(dir, "v2"), { name: "skiff.test/imported", tag: "v2" });
  runtime = createContainerdRuntime({ address: ctrd.address, namespace: ctrd.namespace });
  network = createCniNetwork({ confDir: join(dir, "net.d"), stateDir: join(dir, "cni"), network: { name, bridge: name, podCidr: cidr } });
  base = {
    transport: cp.transport,
    nodeName: NODE,
    runtime,
    network,
    rootDir: join(dir, "root"),
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    listen: { host: "127.0.0.1", port: 0 },
    podCidr: cidr,
    heartbeatMs: 500,
    resyncMs: 300,
    // A start retry after ErrImageNeverPull would come only after a minute: a pod that runs in
    // time found its image at once (or was nudged by an import).
    crashLoopBackoff: { initialMs: 60_000, maxMs: 60_000 },
  };
  pods = cp.client<Pod>("Pod");
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  for (const c of (await runtime?.listContainers().catch(() => [])) ?? []) {
    await runtime.stopContainer(c.id, 0).catch(() => undefined);
    await runtime.removeContainer(c.id).catch(() => undefined);
    await network.tearDown(c.podUid).catch(() => undefined);
  }
  await runtime?.close();
  if (name) await removeRun(name).catch(() => undefined);
  await removeUnusedPortmapChains().catch(() => undefined);
  await ctrd?.stop();
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const neverPulled = (podName: string, image: string): Pod =>
  testPod(podName, { nodeName: NODE, containers: [{ name: "app", image, imagePullPolicy: "Never", command: ["sleep", "3600"] }] });

const waitForPod = (podName: string, what: string, pred: (p: Pod) => boolean, timeoutMs = 30_000) =>
  waitFor(`pod ${podName}: ${what}`, async () => {
    const p = await pods.get("default", podName);
    return pred(p) ? p : undefined;
  }, timeoutMs);

async function startAgent(importImages: string, more: Partial<AgentOptions> = {}): Promise<void> {
  await agent?.stop();
  agent = createAgent({ ...base, importImages, ...more });
  await agent.start();
}

describe("image import (--import-images)", () => {
  it("imports a tarball before syncing pods: a pod with imagePullPolicy Never runs at once", async () => {
    // The pod is bound before the agent starts: its first sync already finds the image.
    await pods.create(neverPulled("early", v1.ref));
    expect(await runtime.getImage(v1.ref)).toBeUndefined();
    await startAgent(v1.tarPath);
    expect((await runtime.getImage(v1.ref))?.id).toBe(v1.configDigest);
    const p = await waitForPod("early", "Running", (p) => p.status?.phase === "Running");
    expect(cstatus(p)!.imageId).toBe(v1.configDigest);
    expect(cstatus(p)!.restartCount).toBe(0);
  });

  it("a missing image with imagePullPolicy Never: ErrImageNeverPull", async () => {
    await pods.create(neverPulled("absent", "skiff.test/absent:v1"));
    const p = await waitForPod("absent", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    expect(cstatus(p)!.state!.waiting!.message).toBe('Container image "skiff.test/absent:v1" is not present with pull policy of Never');
    expect(p.status!.phase).toBe("Pending");
  });

  it("a directory is re-scanned: a tarball copied in later starts the pod waiting for it; a broken one is skipped", async () => {
    const watched = join(dir, "watched");
    mkdirSync(watched);
    writeFileSync(join(watched, "broken.tar"), "this is not a tar archive");
    copyFileSync(v1.tarPath, join(watched, "v1.tar"));
    await startAgent(watched, { importRescanMs: 300 });
    // The agent restarted and adopted the first pod; the broken file did not stop it.
    await pods.create(neverPulled("late", v2.ref));
    await waitForPod("late", "ErrImageNeverPull", (p) => cstatus(p)?.state?.waiting?.reason === "ErrImageNeverPull");
    copyFileSync(v2.tarPath, join(watched, "v2.tar"));
    const p = await waitForPod("late", "Running", (p) => p.status?.phase === "Running", 15_000);
    expect(cstatus(p)!.imageId).toBe(v2.configDigest);
    expect((await pods.get("default", "early")).status!.phase).toBe("Running");
  });
});
