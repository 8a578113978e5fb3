// Containers that end, crash, fail their probes or exceed their memory, on real parts
// (cluster.ts): what the pod's status says (exit codes, restartCount, CrashLoopBackOff and its
// growing delays, restart policies, probe-driven restarts and readiness, OOMKilled) and what the
// kernel enforces (the memory limit in the container's cgroup).
//
// The agent runs with CrashLoopBackOff 1 s doubling to 4 s (the first exit restarts at once) and a probe "second" of 200 ms.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { condition, cstatus, memoryLimitOf, ms, startCluster, waitFor, type Cluster } from "./cluster.ts";

const BACKOFF_INITIAL_MS = 1000;
const BACKOFF_MAX_MS = 4000;

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ agent: { crashLoopBackoff: { initialMs: BACKOFF_INITIAL_MS, maxMs: BACKOFF_MAX_MS } } });
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

/** The running instance's id as the runtime knows it (status shows containerd://<id>). */
const runtimeId = (p: Pod, name = "app") => cstatus(p, name)!.containerId.replace(/^containerd:\/\//, "");

interface Attempt {
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  /** The waiting message while the restart after this attempt was held back. */
  backoff?: string;
}

describe("restarts", () => {
  it("restarts a crashing container with growing CrashLoopBackOff delays, counting restarts and keeping exit codes and the previous log", async () => {
    const created = await c.createPod("crash", { containers: [{ name: "app", command: ["sh", "-c", "echo run; exit 3"] }] });
    const uid = created.metadata!.uid;
    const attempts = new Map<number, Attempt>();
    const attempt = (n: number) => attempts.get(n) ?? (attempts.set(n, {}), attempts.get(n)!);
    const record = (p: Pod) => {
      const s = cstatus(p);
      if (!s?.state) return;
      const n = s.restartCount;
      const term = (t: NonNullable<typeof s.lastState>["terminated"], k: number) => {
        if (!t) return;
        Object.assign(attempt(k), { startedAt: ms(t.startedAt), finishedAt: ms(t.finishedAt), exitCode: t.exitCode });
      };
      if (s.state.waiting?.reason === "CrashLoopBackOff") {
        term(s.lastState?.terminated, n);
        attempt(n).backoff = s.state.waiting.message;
      } else if (s.state.running) {
        attempt(n).startedAt = ms(s.state.running.startedAt);
        term(s.lastState?.terminated, n - 1);
      } else if (s.state.terminated) {
        term(s.state.terminated, n);
      }
    };
    // Watch the status until the restart after the 4th run (restartCount 3) is held back.
    await waitFor("four runs, the later ones each followed by a back-off", async () => {
      const p = await c.pods.get("default", "crash");
      record(p);
      return attempts.get(3)?.backoff !== undefined && attempts.get(3)?.finishedAt !== undefined;
    }, 60_000);

    const suffix = `restarting failed container=app pod=crash_default(${uid})`;
    // The first exit restarts at once (as the kubelet does); then 1 s doubling, capped at 4 s.
    const expected = [0, 1000, 2000, 4000];
    for (let n = 0; n <= 3; n++) {
      const a = attempts.get(n)!;
      expect(a.exitCode, `exit code of run ${n}`).toBe(3);
      expect(a.backoff, `back-off after run ${n}`).toBe(n === 0 ? undefined : `back-off ${expected[n] / 1000}s ${suffix}`);
    }
    // The delays really happened: each later restart started at least the back-off after the
    // previous exit, and they grew.
    const gaps = [1, 2, 3].map((n) => attempts.get(n)!.startedAt! - attempts.get(n - 1)!.finishedAt!);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i], `gap before restart ${i + 1}`).toBeGreaterThanOrEqual(expected[i]);
    expect(gaps[2]).toBeGreaterThan(gaps[1]);

    const p = await c.pods.get("default", "crash");
    expect(cstatus(p)!.restartCount).toBe(3);
    expect(cstatus(p)!.lastState!.terminated).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(p.status!.phase).toBe("Running"); // restartPolicy Always: never terminal
    expect(await c.logs("crash", { previous: true })).toBe("run\n");
    await c.pods.delete("default", "crash", { gracePeriodSeconds: 1n });
  });

  it("OnFailure restarts a failed container but not a succeeded one (Succeeded); Never restarts nothing (Failed)", async () => {
    const onFailure = await c.createPod("onfailure", {
      restartPolicy: "OnFailure",
      volumes: [{ name: "state", emptyDir: {} }] as any,
      containers: [{
        name: "app",
        // Fails on its first run, succeeds on the second (the emptyDir outlives the container).
        command: ["sh", "-c", "if [ -f /state/failed-once ]; then echo second; exit 0; fi; touch /state/failed-once; echo first; exit 2"],
        volumeMounts: [{ name: "state", mountPath: "/state" }] as any,
      }],
    });
    const never = await c.createPod("never", { restartPolicy: "Never", containers: [{ name: "app", command: ["sh", "-c", "exit 4"] }] });

    let p = await c.waitForPod("onfailure", "Succeeded", (p) => p.status?.phase === "Succeeded");
    expect(cstatus(p)!.restartCount).toBe(1);
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    expect(cstatus(p)!.lastState!.terminated).toMatchObject({ exitCode: 2, reason: "Error" });
    let q = await c.waitForPod("never", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(q)!.restartCount).toBe(0);
    expect(cstatus(q)!.state!.terminated).toMatchObject({ exitCode: 4, reason: "Error" });

    // Several resyncs and more than a back-off later, nothing was started again.
    await sleep(2 * BACKOFF_INITIAL_MS + 500);
    p = await c.pods.get("default", "onfailure");
    q = await c.pods.get("default", "never");
    expect([p.status!.phase, cstatus(p)!.restartCount]).toEqual(["Succeeded", 1]);
    expect([q.status!.phase, cstatus(q)!.restartCount]).toEqual(["Failed", 0]);
    expect((await c.containersOf(onFailure.metadata!.uid)).map((x) => [x.attempt, x.state, x.exitCode])).toEqual([[0, "exited", 2], [1, "exited", 0]]);
    expect((await c.containersOf(never.metadata!.uid)).map((x) => [x.attempt, x.state, x.exitCode])).toEqual([[0, "exited", 4]]);
    expect(await c.logs("onfailure")).toBe("second\n");
    expect(await c.logs("onfailure", { previous: true })).toBe("first\n");
  });
});

describe("probes", () => {
  it("restarts a container whose liveness probe starts failing", async () => {
    await c.createPod("liveness", {
      terminationGracePeriodSeconds: 1n,
      containers: [{
        name: "app",
        command: ["sh", "-c", "touch /tmp/healthy; exec sleep 3600"],
        livenessProbe: { exec: { command: ["test", "-f", "/tmp/healthy"] }, periodSeconds: 1, failureThreshold: 2 } as any,
      }],
    });
    let p = await c.waitForPod("liveness", "Running", (p) => cstatus(p)?.state?.running !== undefined);
    const first = runtimeId(p);
    // Healthy: a dozen probe periods pass without a restart.
    await sleep(1500);
    p = await c.pods.get("default", "liveness");
    expect([cstatus(p)!.restartCount, runtimeId(p)]).toEqual([0, first]);

    const rm = await c.runtime.exec(first, ["rm", "/tmp/healthy"], 5000);
    expect(rm.exitCode).toBe(0);
    p = await c.waitForPod("liveness", "restarted by its liveness probe", (p) => cstatus(p)?.restartCount === 1 && cstatus(p)?.state?.running !== undefined);
    expect(runtimeId(p)).not.toBe(first);
    const last = cstatus(p)!.lastState!.terminated!;
    expect(last.message).toBe('Liveness probe failed: command ["test","-f","/tmp/healthy"] exited with 1');
    // sleep as PID 1 ignores SIGTERM: killed after the 1 s grace period.
    expect(last.exitCode).toBe(137);
    expect(last.containerId).toBe(`containerd://${first}`);

    // The new instance has its file again and stays up.
    const second = runtimeId(p);
    await sleep(1500);
    p = await c.pods.get("default", "liveness");
    expect([cstatus(p)!.restartCount, runtimeId(p), p.status!.phase]).toEqual([1, second, "Running"]);
    await c.pods.delete("default", "liveness", { gracePeriodSeconds: 1n });
  });

  it("flips the Ready condition with the readiness probe, both ways, without restarting", async () => {
    await c.createPod("readiness", {
      containers: [{
        name: "web",
        readinessProbe: { httpGet: { path: "/ready.html", port: "80" }, periodSeconds: 1, failureThreshold: 1 } as any,
      }],
    });
    let p = await c.waitForPod("readiness", "Running", (p) => p.status?.phase === "Running");
    const id = runtimeId(p, "web");
    // Not ready while /ready.html answers 404.
    await sleep(1500);
    p = await c.pods.get("default", "readiness");
    expect(condition(p, "Ready")).toBe("False");
    expect(p.status!.conditions.find((x) => x.type === "Ready")).toMatchObject({ reason: "ContainersNotReady", message: "containers with unready status: [web]" });
    expect(cstatus(p, "web")!.ready).toBe(false);

    expect((await c.runtime.exec(id, ["touch", "/www/ready.html"], 5000)).exitCode).toBe(0);
    p = await c.waitForPod("readiness", "Ready", (p) => condition(p, "Ready") === "True");
    expect([cstatus(p, "web")!.ready, condition(p, "ContainersReady")]).toEqual([true, "True"]);

    expect((await c.runtime.exec(id, ["rm", "/www/ready.html"], 5000)).exitCode).toBe(0);
    p = await c.waitForPod("readiness", "not Ready again", (p) => condition(p, "Ready") === "False");
    expect(cstatus(p, "web")!.ready).toBe(false);
    expect([cstatus(p, "web")!.restartCount, runtimeId(p, "web"), p.status!.phase]).toEqual([0, id, "Running"]);
    await c.pods.delete("default", "readiness", { gracePeriodSeconds: 1n });
  });
});

describe("resources", () => {
  it("puts the memory limit on the container's cgroup and reports OOMKilled when the container exceeds it", async () => {
    const created = await c.createPod("hog", {
      restartPolicy: "Never",
      containers: [{
        name: "app",
        // Waits for the go-ahead, then asks for 64 MiB at once.
        command: ["sh", "-c", "until [ -f /tmp/go ]; do sleep 0.1; done; exec dd if=/dev/zero of=/dev/null bs=64M count=1"],
        resources: { limits: { memory: "32Mi" } } as any,
      }],
    });
    const p = await c.waitForPod("hog", "Running", (p) => cstatus(p)?.state?.running !== undefined);
    const [running] = await c.containersOf(created.metadata!.uid);
    expect(running.pid).toBeGreaterThan(0);
    const limit = memoryLimitOf(running.pid!);
    expect(limit.path).toContain(`/${c.ctrd.namespace}/${running.id}/`);
    expect(limit.bytes).toBe(32 * 1024 * 1024);
    expect(p.status!.qosClass).toBe("Burstable");

    expect((await c.runtime.exec(running.id, ["touch", "/tmp/go"], 5000)).exitCode).toBe(0);
    const q = await c.waitForPod("hog", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(q)!.state!.terminated).toMatchObject({ reason: "OOMKilled", exitCode: 137 });
    expect(cstatus(q)!.restartCount).toBe(0);
  });
});
