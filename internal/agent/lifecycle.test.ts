// Deletion, agent restarts (adoption) and orphans.
import { Code, ConnectError } from "@connectrpc/connect";
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cstatus, startHarness, testPod, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const exists = (p: string) => access(p).then(() => true, () => false);

async function gone(harness: Harness, name: string): Promise<boolean> {
  try {
    await harness.getPod(name);
    return false;
  } catch (err) {
    return ConnectError.from(err).code === Code.NotFound;
  }
}

describe("deleting a pod", () => {
  it("stops containers with the grace period, cleans up, then confirms so the object disappears", async () => {
    h = await startHarness();
    const stops: [string, number][] = [];
    const orig = h.runtime.stopContainer;
    h.runtime.stopContainer = async (id, t) => {
      stops.push([id, t]);
      return orig(id, t);
    };
    const created = await h.createPod("doomed", { containers: [{ name: "a" }, { name: "b" }] });
    const uid = created.metadata!.uid;
    const p = await h.waitForPod("doomed", "Running", (p) => p.status?.phase === "Running");
    const ids = (await h.containersOf(p)).map((c) => c.id).sort();
    expect(await exists(join(h.rootDir, "pods", uid))).toBe(true);
    expect(await h.network.list()).toContain(uid);

    const res = await h.pods.delete("default", "doomed", { gracePeriodSeconds: 7n });
    expect(res.deleted).toBe(false); // the apiserver waits for the agent
    await waitFor("pod gone from the API", () => gone(h!, "doomed"));
    expect(stops.map(([id]) => id).sort()).toEqual(ids);
    expect(stops.every(([, t]) => t === 7)).toBe(true);
    expect(await h.containersOf(p)).toEqual([]);
    expect(await h.network.list()).not.toContain(uid);
    expect(await exists(join(h.rootDir, "pods", uid))).toBe(false);
  });

  it("uses the pod's terminationGracePeriodSeconds when the delete gives none", async () => {
    h = await startHarness();
    const stops: number[] = [];
    const orig = h.runtime.stopContainer;
    h.runtime.stopContainer = async (id, t) => {
      stops.push(t);
      return orig(id, t);
    };
    await h.createPod("grace", { terminationGracePeriodSeconds: 3n });
    await h.waitForPod("grace", "Running", (p) => p.status?.phase === "Running");
    await h.pods.delete("default", "grace");
    await waitFor("pod gone", () => gone(h!, "grace"));
    expect(stops).toEqual([3]);
  });

  it("confirms the deletion of a pod that already finished", async () => {
    h = await startHarness();
    const created = await h.createPod("done", { restartPolicy: "Never" });
    await h.waitForPod("done", "Running", (p) => p.status?.phase === "Running");
    const [c] = await h.containersOf(created);
    h.runtime.exit(c.id, 0);
    await h.waitForPod("done", "Succeeded", (p) => p.status?.phase === "Succeeded");
    // The finished pod keeps its IP in the status but no longer holds an address.
    expect(await h.network.list()).not.toContain(created.metadata!.uid);
    await h.pods.delete("default", "done");
    await waitFor("pod gone", () => gone(h!, "done"));
    expect(await h.containersOf(created)).toEqual([]);
  });
});

describe("agent restart", () => {
  it("adopts running containers without restarting them, keeping restart counts and the pod IP", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 20, maxMs: 50 } });
    const created = await h.createPod("kept");
    await h.waitForPod("kept", "Running", (p) => p.status?.phase === "Running");
    const [first] = await h.containersOf(created);
    h.runtime.exit(first.id, 1);
    let p = await h.waitForPod("kept", "restarted once", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    const ip = p.status!.podIp;
    const before = await h.containersOf(created);
    let creates = 0;
    const orig = h.runtime.createContainer;
    h.runtime.createContainer = async (cfg) => {
      creates++;
      return orig(cfg);
    };

    await h.restartAgent();
    // A new pod proves the new agent is working.
    await h.createPod("fresh");
    await h.waitForPod("fresh", "Running", (p) => p.status?.phase === "Running");
    p = await h.getPod("kept");
    expect(await h.containersOf(created)).toEqual(before);
    expect(creates).toBe(1); // only "fresh"
    expect(cstatus(p)!.restartCount).toBe(1);
    expect(cstatus(p)!.state!.running).toBeDefined();
    expect(p.status!.podIp).toBe(ip);
    expect((await h.network.setUp(p)).ip).toBe(ip);
  });

  it("removes containers, network and directories of pods that no longer exist or are not on this node", async () => {
    h = await startHarness();
    const kept = await h.createPod("kept");
    const forced = await h.createPod("forced");
    await h.waitForPod("kept", "Running", (p) => p.status?.phase === "Running");
    await h.waitForPod("forced", "Running", (p) => p.status?.phase === "Running");
    await h.agent.stop();

    // While the agent is down: a pod is force-deleted, a stray container of a pod bound to another
    // node appears, and a directory nobody owns.
    await h.pods.delete("default", "forced", { gracePeriodSeconds: 0n });
    expect(await gone(h, "forced")).toBe(true);
    const victim = await h.pods.create(testPod("victim", { nodeName: "other-node" } as any));
    await h.runtime.pullImage("busybox:1.36");
    const strayId = await h.runtime.createContainer({
      podUid: victim.metadata!.uid, podName: "victim", podNamespace: "default", containerName: "app", attempt: 0,
      image: "busybox:1.36", command: [], args: [], env: [], workingDir: "", mounts: [], resources: {}, netnsPath: "", hostname: "victim", logPath: "/dev/null",
    });
    await h.runtime.startContainer(strayId);
    await h.network.setUp(victim);
    await mkdir(join(h.rootDir, "pods", "no-such-pod-uid", "volumes"), { recursive: true });
    expect(new Set((await h.runtime.listContainers()).map((c) => c.podUid)).size).toBe(3);

    await h.restartAgent();
    const all = await h.runtime.listContainers();
    expect(all.map((c) => c.podUid)).toEqual([kept.metadata!.uid]);
    expect(await h.network.list()).toEqual([kept.metadata!.uid]);
    expect(await exists(join(h.rootDir, "pods", "no-such-pod-uid"))).toBe(false);
    expect(await exists(join(h.rootDir, "pods", forced.metadata!.uid))).toBe(false);
    expect(await exists(join(h.rootDir, "pods", kept.metadata!.uid))).toBe(true);
    expect((await h.getPod("kept")).status!.phase).toBe("Running");
  });
});
