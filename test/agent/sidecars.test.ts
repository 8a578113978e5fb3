// Sidecar init containers (restartPolicy: Always) on real parts (cluster.ts): started in order
// before the app containers and not waited on to exit, restarted when they exit, stopped after the
// app containers (at deletion, and when a run-to-completion pod's app containers are done).
// The containers note what happens to them in a hostPath directory the test reads.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { condition, cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

function outVolume(pod: string) {
  const dir = join(c.dir, `${pod}-out`);
  return { dir, volumes: [{ name: "out", hostPath: { path: dir, type: "DirectoryOrCreate" } }] as any, volumeMounts: [{ name: "out", mountPath: "/out" }] as any };
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

/** A sidecar that notes its start and its SIGTERM, and exits (status 1) when /out/quit-proxy appears. */
const PROXY = "trap 'echo proxy-TERM >> /out/log; exit 0' TERM; echo proxy-start >> /out/log; while [ ! -f /out/quit-proxy ]; do sleep 0.2; done; rm /out/quit-proxy; exit 1";

describe("sidecar init containers", () => {
  it("start before the app containers, restart when they exit, and stop after the app containers", async () => {
    const o = outVolume("sidecar");
    await c.createPod("sidecar", {
      terminationGracePeriodSeconds: 30n,
      volumes: o.volumes,
      initContainers: [
        { name: "setup", command: ["sh", "-c", "echo setup >> /out/log"], volumeMounts: o.volumeMounts },
        { name: "proxy", restartPolicy: "Always", command: ["sh", "-c", PROXY], volumeMounts: o.volumeMounts },
      ],
      containers: [
        {
          name: "app",
          // On SIGTERM it takes a moment: a sidecar stopped at the same time would note its TERM first.
          command: ["sh", "-c", "trap 'echo app-TERM >> /out/log; sleep 1; echo app-exit >> /out/log; exit 0' TERM; echo app-start >> /out/log; sleep 3600 & wait"],
          volumeMounts: o.volumeMounts,
        },
      ],
    });
    const p = await c.waitForPod("sidecar", "Ready", (p) => condition(p, "Ready") === "True" && cstatus(p, "app")?.state?.running !== undefined, 60_000);
    expect(condition(p, "Initialized")).toBe("True");
    expect(cstatus(p, "proxy")).toMatchObject({ started: true, ready: true, restartCount: 0 });
    expect(cstatus(p, "proxy")!.state!.running).toBeDefined();
    await waitFor("the app started", () => lines(join(o.dir, "log")).includes("app-start"), 15_000);
    expect(lines(join(o.dir, "log"))).toEqual(["setup", "proxy-start", "app-start"]);

    // The sidecar exits: it is started again; the app container keeps running.
    writeFileSync(join(o.dir, "quit-proxy"), "");
    const after = await c.waitForPod("sidecar", "proxy restarted", (p) => cstatus(p, "proxy")?.restartCount === 1 && cstatus(p, "proxy")?.state?.running !== undefined, 60_000);
    expect(cstatus(after, "proxy")!.lastState!.terminated!.exitCode).toBe(1);
    expect(cstatus(after, "app")!.restartCount).toBe(0);
    expect(after.status!.phase).toBe("Running");

    await c.pods.delete("default", "sidecar");
    await c.waitForGone("sidecar", 60_000);
    expect(lines(join(o.dir, "log"))).toEqual(["setup", "proxy-start", "app-start", "proxy-start", "app-TERM", "app-exit", "proxy-TERM"]);
  });

  it("a sidecar with a startup probe holds the app containers back until the probe passes", async () => {
    const o = outVolume("sidecar-probe");
    await c.createPod("sidecar-probe", {
      terminationGracePeriodSeconds: 30n,
      volumes: o.volumes,
      initContainers: [
        {
          name: "proxy",
          restartPolicy: "Always",
          command: ["sh", "-c", PROXY],
          volumeMounts: o.volumeMounts,
          // Each run notes itself; it passes once the test creates /out/proxy-ready.
          startupProbe: { exec: { command: ["sh", "-c", "echo probe >> /out/probes; test -f /out/proxy-ready"] }, periodSeconds: 1, failureThreshold: 1000 } as any,
        },
      ],
      containers: [{ name: "app", command: ["sh", "-c", "echo app-start >> /out/log; sleep 3600 & wait"], volumeMounts: o.volumeMounts }],
    });
    await waitFor("the startup probe failing three times", () => lines(join(o.dir, "probes")).length >= 3, 60_000);
    const waiting = await c.getPod("sidecar-probe");
    expect(lines(join(o.dir, "log"))).toEqual(["proxy-start"]);
    expect(condition(waiting, "Initialized")).toBe("False");
    expect(cstatus(waiting, "proxy")).toMatchObject({ started: false, restartCount: 0 });
    expect(cstatus(waiting, "app")!.state!.waiting!.reason).toBe("PodInitializing");

    writeFileSync(join(o.dir, "proxy-ready"), "");
    await c.waitForPod("sidecar-probe", "app running", (p) => cstatus(p, "app")?.state?.running !== undefined && condition(p, "Initialized") === "True", 60_000);
    expect(lines(join(o.dir, "log"))).toEqual(["proxy-start", "app-start"]);
    await c.pods.delete("default", "sidecar-probe", { gracePeriodSeconds: 1n });
    await c.waitForGone("sidecar-probe", 60_000);
  });

  it("a run-to-completion pod succeeds when its app containers are done, and its sidecar is stopped", async () => {
    const o = outVolume("sidecar-job");
    await c.createPod("sidecar-job", {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 30n,
      volumes: o.volumes,
      initContainers: [{ name: "proxy", restartPolicy: "Always", command: ["sh", "-c", PROXY], volumeMounts: o.volumeMounts }],
      containers: [{ name: "app", command: ["sh", "-c", "echo job-done >> /out/log"], volumeMounts: o.volumeMounts }],
    });
    const p = await c.waitForPod("sidecar-job", "Succeeded, sidecar stopped", (p) => p.status?.phase === "Succeeded" && cstatus(p, "proxy")?.state?.terminated !== undefined, 60_000);
    expect(cstatus(p, "app")!.state!.terminated!.exitCode).toBe(0);
    expect(cstatus(p, "proxy")!.state!.terminated!.exitCode).toBe(0); // its TERM trap
    expect(lines(join(o.dir, "log"))).toEqual(["proxy-start", "job-done", "proxy-TERM"]);
    await c.pods.delete("default", "sidecar-job", { gracePeriodSeconds: 0n });
    await c.waitForGone("sidecar-job", 60_000);
  });
});
