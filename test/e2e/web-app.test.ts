// The example app end to end, as a user runs it: `skiffctl apply -f deploy/examples/` on a
// cluster composed like `skiff up` (etcd, apiserver, scheduler, controller-manager, a node agent
// on containerd + runc + CNI importing the busybox-httpd image). Then what the user does to it:
// kill a container, delete a pod, scale, roll out a new image and undo — and what they see:
// pods Running and Ready, pages fetched from pod IPs, restart counts, ReplicaSets.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { cstatus, wget } from "../agent/cluster.ts";
import { IMAGE_V1, IMAGE_V2, PAGE, serving, startE2ECluster, waitFor, type E2ECluster } from "./cluster.ts";

const EXAMPLES = fileURLToPath(new URL("../../deploy/examples/", import.meta.url));
const APP = "app=web";
/** State transitions (pods starting, probes passing) get this long. */
const SLOW = 60_000;

let e: E2ECluster;

beforeAll(async () => {
  e = await startE2ECluster();
}, 180_000);

afterAll(async () => {
  await e?.stop();
}, 120_000);

/** Waits until exactly `n` pods of the app serve (Running, Ready, not being deleted); returns them. */
async function servingPods(n: number, what = `${n} serving web pods`): Promise<Pod[]> {
  let last: string[] = [];
  try {
    return await waitFor(what, async () => {
      const all = await e.pods(APP);
      last = all.map((p) => `${p.metadata!.name} ${p.status?.phase}${serving(p) ? " serving" : ""}${p.metadata?.deletionTimestamp ? " deleting" : ""}`);
      const up = all.filter(serving);
      const active = all.filter((p) => !p.metadata?.deletionTimestamp);
      return up.length === n && active.length === n && up;
    }, SLOW);
  } catch (err) {
    throw new Error(`${(err as Error).message}\npods: ${last.join("; ")}`, { cause: err });
  }
}

const page = (p: Pod) => wget(`http://${p.status!.podIp}:8080/`);

/** The ReplicaSets of deployment web: name, spec.replicas, image. */
async function replicaSets(): Promise<{ name: string; replicas: number; ready: number; image: string }[]> {
  const { items } = await e.client<ReplicaSet>("ReplicaSet").list("default", { labelSelector: APP });
  return items
    .filter((rs) => rs.metadata!.ownerReferences.some((o) => o.kind === "Deployment" && o.name === "web"))
    .map((rs) => ({
      name: rs.metadata!.name,
      replicas: rs.spec?.replicas ?? 0,
      ready: rs.status?.readyReplicas ?? 0,
      image: rs.spec?.template?.spec?.containers[0]?.image ?? "",
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Follows the app's pods through a Watch (every state the apiserver stores, none missed between
 * polls) and records the fewest serving at any moment after the initial state.
 */
function readinessWatcher() {
  const stop = new AbortController();
  const pods = new Map<string, Pod>();
  let live = false;
  let min = Infinity;
  let events = 0;
  // The last events, and those that led to the minimum: a failure says which pod stopped serving and how.
  const trail: string[] = [];
  let atMin: string[] = [];
  const count = () => [...pods.values()].filter(serving).length;
  const show = (type: string, p: Pod) => {
    const ready = p.status?.conditions.find((c) => c.type === "Ready");
    const state = p.metadata?.deletionTimestamp ? "deleting" : `${p.status?.phase} Ready=${ready?.status ?? "-"}${ready?.reason ? ` (${ready.reason})` : ""}`;
    return `${type} ${p.metadata!.name} rv ${p.metadata!.resourceVersion}: ${state}`;
  };
  let markLive = () => {};
  const isLive = new Promise<void>((resolve) => (markLive = resolve));
  const done = (async () => {
    for await (const ev of e.node.pods.watch("default", { labelSelector: APP, resourceVersion: "", signal: stop.signal })) {
      if (ev.type === "BOOKMARK") {
        if (!live) {
          live = true;
          min = count();
          markLive();
        }
        continue;
      }
      if (ev.type === "DELETED") pods.delete(ev.object.metadata!.name);
      else pods.set(ev.object.metadata!.name, ev.object);
      if (live) {
        events++;
        const n = count();
        trail.push(`${show(ev.type, ev.object)} → ${n} serving`);
        if (trail.length > 12) trail.shift();
        if (n < min) atMin = [...trail];
        min = Math.min(min, n);
      }
    }
  })().catch((err) => {
    if (!stop.signal.aborted) throw err;
  });
  return {
    live: isLive,
    /** The fewest pods serving, the number of events, and the events up to that minimum (a message). */
    async stop(): Promise<{ min: number; events: number; why: string }> {
      stop.abort();
      await done;
      return { min, events, why: `events up to the fewest serving:\n${atMin.join("\n")}` };
    },
  };
}

describe.sequential("the example web app on a real node", () => {
  it("skiffctl apply -f deploy/examples/: the Deployment reaches 3 Running, Ready pods that serve a page from their pod IPs", async () => {
    const out = await e.ok("apply", "-f", EXAMPLES);
    expect(out).toMatch(/configmap\/web-config created/);
    expect(out).toMatch(/deployment(\.apps)?\/web created/);
    expect(out).toMatch(/service\/web created/);

    const pods = await servingPods(3);
    for (const p of pods) {
      expect(p.spec!.nodeName).toBe(e.node.nodeName);
      expect(cstatus(p, "httpd")).toMatchObject({ ready: true, restartCount: 0, image: IMAGE_V1 });
      expect(await page(p)).toBe(PAGE.v1);
    }
    // The ConfigMap's greeting reached the container's environment.
    const [container] = (await e.node.containersOf(pods[0].metadata!.uid, "httpd")).filter((x) => x.state === "running");
    const env = await e.node.runtime.exec(container.id, ["sh", "-c", "echo \"$GREETING\""], 5000);
    expect(env.stdout.trim()).toBe("Hello from Skiff");

    // The Service's endpoints are the three pods.
    const ips = pods.map((p) => p.status!.podIp).sort();
    await waitFor("endpoints of service web", async () => {
      const ep = await e.client<Endpoints>("Endpoints").get("default", "web");
      const got = ep.subsets.flatMap((s) => s.addresses.map((a) => a.ip)).sort();
      return JSON.stringify(got) === JSON.stringify(ips);
    }, SLOW);
    expect(await e.ok("get", "deployment", "web")).toMatch(/^web\s+3\/3\s+3\s+3\s/m);
    // Placed by the scheduler, as describe tells.
    expect(await e.ok("describe", "pod", pods[0].metadata!.name)).toContain(`Successfully assigned default/${pods[0].metadata!.name} to ${e.node.nodeName}`);
  });

  it("a container killed with SIGKILL is restarted in its pod (restartCount 1); a deleted pod is replaced", async () => {
    const before = await servingPods(3);
    const victim = before[0];
    const uid = victim.metadata!.uid;
    const [running] = (await e.node.containersOf(uid, "httpd")).filter((x) => x.state === "running");
    expect(running?.pid).toBeGreaterThan(0);
    process.kill(running.pid!, "SIGKILL"); // kill -9 <pid of the container's process, as containerd reports it>

    const restarted = await waitFor("httpd restarted and ready again", async () => {
      const p = await e.node.pods.get("default", victim.metadata!.name);
      return cstatus(p, "httpd")?.restartCount === 1 && serving(p) && p;
    }, SLOW);
    expect(restarted.metadata!.uid).toBe(uid);
    expect(cstatus(restarted, "httpd")!.lastState?.terminated).toMatchObject({ exitCode: 137 });
    const [again] = (await e.node.containersOf(uid, "httpd")).filter((x) => x.state === "running");
    expect(again.pid).not.toBe(running.pid);
    expect(await page(restarted)).toBe(PAGE.v1);
    // Restarted in place: the same three pods.
    const names = (ps: Pod[]) => ps.map((p) => p.metadata!.name).sort();
    expect(names(await servingPods(3))).toEqual(names(before));

    const doomed = before[1].metadata!.name;
    expect(await e.ok("delete", "pod", doomed)).toContain(`pod "${doomed}" deleted`);
    const after = await servingPods(3, "a replacement for the deleted pod serving");
    expect(names(after)).not.toContain(doomed);
    const [replacement] = after.filter((p) => !names(before).includes(p.metadata!.name));
    expect(replacement).toBeDefined();
    expect(replacement.spec!.nodeName).toBe(e.node.nodeName);
    expect(await page(replacement)).toBe(PAGE.v1);
  });

  it("skiffctl scale 3 → 5 → 2: the number of Running pods follows", async () => {
    expect(await e.ok("scale", "deploy/web", "--replicas", "5")).toContain("scaled");
    const five = await servingPods(5);
    for (const p of five) expect(await page(p)).toBe(PAGE.v1);
    expect(await e.ok("scale", "deploy/web", "--replicas", "2")).toContain("scaled");
    const two = await servingPods(2);
    // The other three are terminating (they go once their grace period is over: see the last test).
    const kept = new Set(two.map((p) => p.metadata!.name));
    const leaving = five.filter((p) => !kept.has(p.metadata!.name)).map((p) => p.metadata!.name);
    expect(leaving).toHaveLength(3);
    for (const name of leaving) {
      const p = await e.node.getPod(name);
      if (p) expect(p.metadata?.deletionTimestamp).toBeDefined();
    }
    expect(await e.ok("get", "deployment", "web")).toMatch(/^web\s+2\/2\s/m);
  });

  it("a rolling update to v2 keeps replicas - maxUnavailable pods serving, ends with only the new ReplicaSet; undo brings v1 back", async () => {
    // Four replicas: the default maxUnavailable of 25% allows one pod unavailable.
    await e.ok("scale", "deploy/web", "--replicas", "4");
    await servingPods(4);
    const d = await e.client<Deployment>("Deployment").get("default", "web");
    expect(d.spec?.replicas).toBe(4);
    expect(d.spec?.strategy?.rollingUpdate?.maxUnavailable || "25%").toBe("25%");
    const maxUnavailable = Math.floor((4 * 25) / 100);
    const [v1Set] = await replicaSets();
    expect(await replicaSets()).toEqual([expect.objectContaining({ replicas: 4, image: IMAGE_V1 })]);

    // v2, with a different page, dropped where the agent imports images from.
    await e.buildImage("v2");
    await waitFor("v2 imported into containerd", () => e.node.runtime.getImage(IMAGE_V2), SLOW);

    let watcher = readinessWatcher();
    await watcher.live;
    expect(await e.ok("set", "image", "deploy/web", `httpd=${IMAGE_V2}`)).toContain("image updated");
    await e.ok("rollout", "status", "deploy/web", "--timeout", "120s");
    let seen = await watcher.stop();
    expect(seen.events).toBeGreaterThan(0);
    expect(seen.min, seen.why).toBeGreaterThanOrEqual(4 - maxUnavailable);

    const sets = await replicaSets();
    expect(sets).toHaveLength(2);
    expect(sets.filter((s) => s.replicas > 0)).toEqual([expect.objectContaining({ replicas: 4, ready: 4, image: IMAGE_V2 })]);
    expect(sets.find((s) => s.name === v1Set.name)).toMatchObject({ replicas: 0, image: IMAGE_V1 });
    for (const p of await servingPods(4)) {
      expect(cstatus(p, "httpd")!.image).toBe(IMAGE_V2);
      expect(await page(p)).toBe(PAGE.v2);
    }

    watcher = readinessWatcher();
    await watcher.live;
    expect(await e.ok("rollout", "undo", "deploy/web")).toContain("rolled back");
    await e.ok("rollout", "status", "deploy/web", "--timeout", "120s");
    seen = await watcher.stop();
    expect(seen.min, seen.why).toBeGreaterThanOrEqual(4 - maxUnavailable);

    // The v1 ReplicaSet is scaled up again; v2's is scaled down.
    const back = await replicaSets();
    expect(back.filter((s) => s.replicas > 0)).toEqual([expect.objectContaining({ name: v1Set.name, replicas: 4, ready: 4, image: IMAGE_V1 })]);
    for (const p of await servingPods(4)) expect(await page(p)).toBe(PAGE.v1);
  });

  it("pods scaled away or replaced stop within their grace period and leave no container behind", async () => {
    // busybox httpd, PID 1 of its container, ignores SIGTERM: these wait out the 30 s default grace.
    const left = await waitFor("only the 4 serving pods left", async () => {
      const all = await e.pods(APP);
      return all.length === 4 && all.every(serving) && all;
    }, 90_000);
    const uids = new Set(left.map((p) => p.metadata!.uid));
    const containers = await e.node.runtime.listContainers();
    expect(containers.filter((x) => !uids.has(x.podUid)).map((x) => `${x.podName}/${x.containerName}`)).toEqual([]);
    expect(containers.filter((x) => x.state === "running")).toHaveLength(4);
  });
});
