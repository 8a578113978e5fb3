// Faults that take a node's containers away under the agent, on real containerd + runc + CNI:
// - a machine reboot: every container process and shim gone, containerd's tmpfs state gone, the
//   pods' network namespaces and bridge gone; containerd and the agent start again and find
//   container records without tasks;
// - `kill -9` of one container's shim while everything else runs.
// Either way the container is started again as a new attempt (restartCount + 1, lastState
// terminated with reason Unknown, exit code 255, as Kubernetes shows it), after its pod's network
// is set up again, with an Event saying what happened — and no status ever claims the old
// instance runs. After a reboot a pod's init containers run again, in order, before its app
// containers. None of it waits for a CrashLoopBackOff: nothing failed yet in the new agent's life.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createAgent } from "../../internal/agent/agent.ts";
import { run } from "../../internal/network/exec.ts";
import { INDEX_HTML, cstatus, startCluster, waitFor, watchPod, wget, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  // A back-off far longer than the tests wait: the restarts below must not wait for one (the
  // kubelet's back-off lives in memory and restarts the first exit it sees at once).
  c = await startCluster({ agent: { crashLoopBackoff: { initialMs: 600_000, maxMs: 600_000 } } });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const runtimeId = (p: Pod, name: string) => cstatus(p, name)!.containerId.replace(/^containerd:\/\//, "");

/** Pids of the containerd shims serving this test's containerd (its socket is in their command line). */
function shimPids(containerId?: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone
    }
    if (!args[0]?.includes("containerd-shim") || !args.includes(c.ctrd.address)) continue;
    if (containerId === undefined || args[args.indexOf("-id") + 1] === containerId) out.push(Number(name));
  }
  return out;
}

/** Whether containerd still has a task for the container. */
async function hasTask(id: string): Promise<boolean> {
  return c.runtime.client.tasks.get({ containerId: id }).then(
    () => true,
    () => false,
  );
}

/** Reboots the node: the agent and containerd stop, every container process goes, the pods' network namespaces and the bridge go. */
async function reboot(pods: Pod[]): Promise<void> {
  await c.agent.stop();
  await c.ctrd.reboot();
  for (const p of pods) await run("ip", ["netns", "delete", `${c.networkName}-${p.metadata!.uid}`]);
  await run("ip", ["link", "delete", c.networkName]);
  expect(shimPids()).toEqual([]);
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

async function eventsOf(p: Pod): Promise<Event[]> {
  const { items } = await c.cp.client<Event>("Event").list("default");
  return items.filter((e) => e.involvedObject?.uid === p.metadata!.uid);
}

/** Running with every container on attempt 1 and ready. */
const restartedOnce = (names: string[]) => (p: Pod) =>
  p.status?.phase === "Running" && names.every((n) => cstatus(p, n)?.restartCount === 1 && cstatus(p, n)?.state?.running !== undefined && cstatus(p, n)?.ready);

describe("node faults", () => {
  it("a reboot: every pod runs again within 30 s as a new attempt, on a network set up again, with nothing left of the old tasks", async () => {
    await c.createPod("web", { containers: [{ name: "web" }] });
    await c.createPod("pair", { containers: [{ name: "web" }, { name: "sleeper", command: ["sleep", "3600"] }] });
    await c.createPod("once", { restartPolicy: "Never", containers: [{ name: "app", command: ["sleep", "3600"] }] });
    const running = (name: string) => c.waitForPod(name, "Running", (p) => p.status?.phase === "Running" && (p.status?.containerStatuses ?? []).every((s) => s.ready));
    const before = await Promise.all(["web", "pair", "once"].map(running));
    const oldIds = before.flatMap((p) => p.status!.containerStatuses.map((s) => runtimeId(p, s.name)));
    const oldShims = shimPids();
    expect(oldShims.length).toBe(oldIds.length);

    await reboot(before);

    // Every status the new agent writes until the pods run again (30 s at most): none says an old
    // instance runs. (The first version of each watch is the stale one from before the reboot.)
    c.agent = createAgent(c.agentOptions);
    let pair: Promise<Pod[]> | undefined;
    const web = await watchPod(c, "web", async () => {
      pair = watchPod(c, "pair", () => c.agent.start(), (vs) => vs.some(restartedOnce(["web", "sleeper"])), 30_000);
      pair.catch(() => undefined);
    }, (vs) => vs.some(restartedOnce(["web"])), 30_000);
    for (const p of [...web.slice(1), ...(await pair!).slice(1)]) {
      for (const s of p.status!.containerStatuses) if (s.state?.running) expect(oldIds).not.toContain(runtimeId(p, s.name));
    }

    for (const [i, name] of ["web", "pair"].entries()) {
      const p = await c.pods.get("default", name);
      for (const s of p.status!.containerStatuses) {
        expect(s.restartCount).toBe(1);
        expect(s.lastState?.terminated).toMatchObject({ exitCode: 255, reason: "Unknown", containerId: before[i].status!.containerStatuses.find((x) => x.name === s.name)!.containerId });
      }
      // The network was made again (a new namespace, CNI ADD), and the pod serves on its IP.
      expect(p.status!.podIp).not.toBe("");
      expect(await wget(`http://${p.status!.podIp}/`)).toBe(INDEX_HTML);
      const reasons = (await eventsOf(p)).map((e) => `${e.type} ${e.reason}`);
      expect(reasons).toContain("Warning ContainerLost");
      expect(reasons).toContain("Normal SandboxChanged");
    }
    // restartPolicy Never: not started again; the pod failed, saying why.
    const once = await c.waitForPod("once", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(once, "app")!.state?.terminated).toMatchObject({ exitCode: 255, reason: "Unknown" });
    expect(cstatus(once, "app")!.restartCount).toBe(0);

    // Nothing of the old tasks: no task, no shim; one shim per container now running.
    for (const id of oldIds) expect(await hasTask(id)).toBe(false);
    expect(shimPids().filter((pid) => oldShims.includes(pid))).toEqual([]);
    expect(shimPids().length).toBe(3);

    for (const name of ["web", "pair", "once"]) await c.pods.delete("default", name, { gracePeriodSeconds: 1n });
    for (const name of ["web", "pair", "once"]) await c.waitForGone(name);
  });

  it("a reboot runs the init containers again, in order, before the app containers restart", async () => {
    const dir = join(c.dir, "inits-out");
    const out = { volumeMounts: [{ name: "out", mountPath: "/out" }] as any };
    await c.createPod("inits", {
      volumes: [{ name: "out", hostPath: { path: dir, type: "DirectoryOrCreate" } }] as any,
      initContainers: [
        { name: "setup", command: ["sh", "-c", "echo setup >> /out/log"], ...out },
        { name: "proxy", restartPolicy: "Always", command: ["sh", "-c", "echo proxy >> /out/log; exec sleep 3600"], ...out },
        { name: "migrate", command: ["sh", "-c", "echo migrate >> /out/log"], ...out },
      ],
      containers: [{ name: "app", command: ["sh", "-c", "echo app >> /out/log; exec sleep 3600"], ...out }],
    });
    const before = await c.waitForPod("inits", "Running", (p) => p.status?.phase === "Running" && !!cstatus(p, "app")?.state?.running, 60_000);
    await waitFor("the app ran", () => lines(join(dir, "log")).includes("app"), 30_000);
    expect(lines(join(dir, "log"))).toEqual(["setup", "proxy", "migrate", "app"]);

    await reboot([before]);
    c.agent = createAgent(c.agentOptions);
    const versions = await watchPod(c, "inits", () => c.agent.start(), (vs) => vs.some((p) => p.status?.phase === "Running" && cstatus(p, "app")?.restartCount === 1 && !!cstatus(p, "app")?.state?.running), 60_000);
    await waitFor("the app ran again", () => lines(join(dir, "log")).length === 8, 30_000);
    // Every init container ran once more, in order, and only then the app container.
    expect(lines(join(dir, "log"))).toEqual(["setup", "proxy", "migrate", "app", "setup", "proxy", "migrate", "app"]);
    // While the init containers ran again the pod said so (Pending, not initialized), as Kubernetes does.
    expect(versions.slice(1).some((p) => p.status?.phase === "Pending" && p.status.conditions.some((x) => x.type === "Initialized" && x.status === "False"))).toBe(true);

    const p = await c.pods.get("default", "inits");
    expect(["setup", "proxy", "migrate", "app"].map((n) => cstatus(p, n)!.restartCount)).toEqual([1, 1, 1, 1]);
    expect(cstatus(p, "setup")!.state!.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(cstatus(p, "proxy")!.state!.running).toBeDefined();
    expect(cstatus(p, "app")!.lastState!.terminated).toMatchObject({ exitCode: 255, reason: "Unknown", containerId: cstatus(before, "app")!.containerId });
    // The second setup finished before the new app container started.
    const setupDone = cstatus(p, "setup")!.state!.terminated!.finishedAt!;
    const appStarted = cstatus(p, "app")!.state!.running!.startedAt!;
    expect(appStarted.seconds * 1_000_000_000n + BigInt(appStarted.nanos)).toBeGreaterThanOrEqual(setupDone.seconds * 1_000_000_000n + BigInt(setupDone.nanos));

    await c.pods.delete("default", "inits", { gracePeriodSeconds: 1n });
    await c.waitForGone("inits");
  });

  it("kill -9 of a container's shim: that container restarts as a new attempt", async () => {
    await c.createPod("victim", { containers: [{ name: "web" }, { name: "sleeper", command: ["sleep", "3600"] }] });
    const p0 = await c.waitForPod("victim", "Running", (p) => p.status?.phase === "Running" && p.status.containerStatuses.every((s) => s.ready));
    const webId = runtimeId(p0, "web");
    const sleeperId = runtimeId(p0, "sleeper");
    const [shim] = shimPids(webId);
    expect(shim).toBeGreaterThan(0);
    const ip = p0.status!.podIp;

    const versions = await watchPod(c, "victim", async () => process.kill(shim, "SIGKILL"), (vs) => vs.some((p) => cstatus(p, "web")?.restartCount === 1 && !!cstatus(p, "web")?.ready), 30_000);
    // Written after the kill: never the old instance running.
    for (const p of versions.slice(1)) if (cstatus(p, "web")?.state?.running) expect(runtimeId(p, "web")).not.toBe(webId);
    const p = await c.pods.get("default", "victim");
    expect(cstatus(p, "web")!.lastState?.terminated).toMatchObject({ reason: "Unknown", exitCode: 255, containerId: `containerd://${webId}` });
    // The other container and the pod's network are untouched.
    expect([runtimeId(p, "sleeper"), cstatus(p, "sleeper")!.restartCount, p.status!.podIp]).toEqual([sleeperId, 0, ip]);
    expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);
    expect(await hasTask(webId)).toBe(false);
    expect((await eventsOf(p)).map((e) => `${e.type} ${e.reason}`)).toContain("Warning ContainerLost");
    await waitFor("the killed shim's process gone", async () => !shimPids().includes(shim));

    await c.pods.delete("default", "victim", { gracePeriodSeconds: 1n });
    await c.waitForGone("victim");
  });
});
