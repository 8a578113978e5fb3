import { afterEach, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { createResourceClient } from "../client/resource-client.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { LOST_MESSAGE } from "./pod-status.ts";
import { cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function runningInstance(harness: Harness, uid: string, attempt: number): Promise<ContainerInfo> {
  return waitFor(`attempt ${attempt} running`, async () =>
    (await harness.runtime.listContainers()).find((c) => c.podUid === uid && c.attempt === attempt && c.state === "running"),
  );
}

describe("restartPolicy Always", () => {
  it("restarts a crashing container with growing CrashLoopBackOff delays", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 200, maxMs: 5000, resetMs: 600_000 } });
    const created = await h.createPod("crash");
    const uid = created.metadata!.uid;
    const delays: number[] = [];
    let c = await runningInstance(h, uid, 0);
    for (let attempt = 1; attempt <= 4; attempt++) {
      h.runtime.exit(c.id, 1);
      const exitedAt = (await h.runtime.containerStatus(c.id))!.finishedAt!.getTime();
      if (attempt === 3) {
        // While it waits, the user sees why and for how long.
        // restartCount 2 tells this wait from the previous one (200 ms, restartCount 1), whose
        // status may still be the last one written when the container exits again.
        const p = await h.waitForPod(
          "crash",
          "CrashLoopBackOff after the third exit",
          (p) => cstatus(p)?.state?.waiting?.reason === "CrashLoopBackOff" && cstatus(p)?.restartCount === 2,
        );
        const s = cstatus(p)!;
        expect(s.state!.waiting!.message).toBe(`back-off 400ms restarting failed container=app pod=crash_default(${uid})`);
        expect(s.lastState!.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
        expect(s.restartCount).toBe(2);
        expect(s.ready).toBe(false);
        expect(p.status!.phase).toBe("Running");
      }
      c = await runningInstance(h, uid, attempt);
      delays.push(c.startedAt!.getTime() - exitedAt);
    }
    // The first exit restarts at once (as the kubelet does), then 200, 400, 800 ms (plus
    // scheduling slack): each wait at least its back-off, and growing.
    expect(delays[1]).toBeGreaterThanOrEqual(190);
    expect(delays[2]).toBeGreaterThanOrEqual(390);
    expect(delays[3]).toBeGreaterThanOrEqual(790);
    expect(delays[2]).toBeGreaterThan(delays[1]);
    expect(delays[3]).toBeGreaterThan(delays[2]);
    const p = await h.waitForPod("crash", "restartCount 4", (p) => cstatus(p)?.restartCount === 4 && !!cstatus(p)?.state?.running);
    expect(cstatus(p)!.lastState!.terminated!.exitCode).toBe(1);
    // The running instance and the one before it (for logs --previous); older ones are removed.
    expect((await h.containersOf(p)).map((c) => c.attempt)).toEqual([3, 4]);
  }, 20_000);

  it("restarts the first exit at once, and again after an agent restart (the back-off lives in memory, as the kubelet's)", async () => {
    // A back-off far longer than any wait below: only a restart without it passes.
    h = await startHarness({ crashLoopBackoff: { initialMs: 600_000, maxMs: 600_000, resetMs: 600_000 } });
    const uid = (await h.createPod("fresh")).metadata!.uid;
    h.runtime.exit((await runningInstance(h, uid, 0)).id, 1);
    h.runtime.exit((await runningInstance(h, uid, 1)).id, 1);
    const p = await h.waitForPod("fresh", "CrashLoopBackOff", (p) => cstatus(p)?.state?.waiting?.reason === "CrashLoopBackOff");
    expect(cstatus(p)!.state!.waiting!.message).toContain("back-off 10m0s");
    expect(cstatus(p)!.restartCount).toBe(1);
    // A new agent has seen nothing fail yet: it starts the container at once.
    await h.restartAgent();
    await runningInstance(h, uid, 2);
    const q = await h.waitForPod("fresh", "restartCount 2", (p) => cstatus(p)?.restartCount === 2 && !!cstatus(p)?.state?.running);
    expect(cstatus(q)!.lastState!.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
  });

  it("starts the back-off over after a container ran longer than resetMs", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 300, maxMs: 5000, resetMs: 500 } });
    const uid = (await h.createPod("reset")).metadata!.uid;
    let c = await runningInstance(h, uid, 0);
    h.runtime.exit(c.id, 1);
    c = await runningInstance(h, uid, 1); // at once
    h.runtime.exit(c.id, 1);
    c = await runningInstance(h, uid, 2); // after 300 ms
    await new Promise((r) => setTimeout(r, 600)); // a "long" run
    h.runtime.exit(c.id, 1);
    c = await runningInstance(h, uid, 3); // at once again: the count started over
    h.runtime.exit(c.id, 1);
    // restartCount 3: not the status of the first wait (restartCount 1), which may still be the last written.
    const p = await h.waitForPod("reset", "CrashLoopBackOff after the fourth exit", (p) => cstatus(p)?.state?.waiting?.reason === "CrashLoopBackOff" && cstatus(p)?.restartCount === 3);
    expect(cstatus(p)!.state!.waiting!.message).toContain("back-off 300ms");
    expect(cstatus(p)!.restartCount).toBe(3);
  });

  it("does not restart a container because the agent restarted", async () => {
    h = await startHarness();
    const created = await h.createPod("steady");
    const c = await runningInstance(h, created.metadata!.uid, 0);
    await h.restartAgent();
    await new Promise((r) => setTimeout(r, 500));
    const now = await h.containersOf(created);
    expect(now.map((x) => [x.id, x.state])).toEqual([[c.id, "running"]]);
  });
});

describe("an agent restart and the pods' ServiceAccount tokens", () => {
  it("keeps a running pod's token: the new agent reads it back instead of asking for another", async () => {
    h = await startHarness();
    const created = await h.createPod("token-kept");
    await runningInstance(h, created.metadata!.uid, 0);
    const asked = h.count("ServiceAccountService/CreateToken");
    expect(asked).toBe(1);
    await h.restartAgent();
    // The new agent syncs the pod (resync every 200 ms) and a new pod, which does need a token.
    const other = await h.createPod("token-new");
    await runningInstance(h, other.metadata!.uid, 0);
    await new Promise((r) => setTimeout(r, 500));
    expect(h.count("ServiceAccountService/CreateToken")).toBe(asked + 1);
  });
});

describe("a container lost unseen (a reboot, a killed shim)", () => {
  it("restarts it as a new attempt: lastState Unknown 255 and a ContainerLost event", async () => {
    h = await startHarness();
    const created = await h.createPod("lost", { containers: [{ name: "app" }, { name: "side" }] });
    const uid = created.metadata!.uid;
    const c = await runningInstance(h, uid, 0);
    const lost = c.containerName === "app" ? c : (await h.containersOf(created, "app"))[0];
    h.runtime.lose(lost.id);
    const p = await h.waitForPod("lost", "app restarted", (p) => cstatus(p, "app")?.restartCount === 1 && !!cstatus(p, "app")?.state?.running);
    expect(cstatus(p, "app")!.lastState!.terminated).toMatchObject({ exitCode: 255, reason: "Unknown", message: LOST_MESSAGE, containerId: `fake://${lost.id}` });
    expect(cstatus(p, "side")!.restartCount).toBe(0);
    const events = await waitFor("the event", async () => {
      const { items } = await createResourceClient<Event>(h!.transport, "Event").list("default");
      const mine = items.filter((e) => e.involvedObject?.uid === uid);
      return mine.length > 0 ? mine : undefined;
    });
    expect(events.map((e) => [e.type, e.reason, e.message])).toEqual([
      ["Warning", "ContainerLost", "Container app is gone without an exit status (the node restarted, or its runtime shim was killed); starting it again (restartPolicy Always)"],
    ]);
  });

  it("restartPolicy Never: not started again, the pod fails", async () => {
    h = await startHarness();
    const created = await h.createPod("lost-never", { restartPolicy: "Never" });
    const c = await runningInstance(h, created.metadata!.uid, 0);
    h.runtime.lose(c.id);
    const p = await h.waitForPod("lost-never", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 255, reason: "Unknown" });
    expect((await h.containersOf(p)).map((x) => x.attempt)).toEqual([0]);
  });
});
