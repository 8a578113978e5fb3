// Container lifecycle hooks on real parts (cluster.ts): preStop runs before SIGTERM and holds it
// back until it returns, bounded by the grace period; postStart holds the container out of
// Running until it returns, and a failing one kills the container (event FailedPostStartHook).
// What the hooks and the containers do is written to a hostPath directory the test reads.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { cstatus, startCluster, waitFor, watchPod, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

/** A hostPath volume "out" at /out, in a directory of this run named after the pod. */
function outVolume(pod: string) {
  const dir = join(c.dir, `${pod}-out`);
  return { dir, volumes: [{ name: "out", hostPath: { path: dir, type: "DirectoryOrCreate" } }] as any, volumeMounts: [{ name: "out", mountPath: "/out" }] as any };
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []);

describe("preStop", () => {
  it("runs before SIGTERM, which waits until the hook returns", async () => {
    const o = outVolume("prestop");
    await c.createPod("prestop", {
      terminationGracePeriodSeconds: 30n,
      volumes: o.volumes,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "trap 'echo TERM >> /out/log; exit 0' TERM; echo up > /out/up; sleep 3600 & wait"],
          volumeMounts: o.volumeMounts,
          lifecycle: { preStop: { exec: { command: ["sh", "-c", "echo hook-begin >> /out/log; sleep 2; echo hook-end >> /out/log"] } } } as any,
        },
      ],
    });
    await c.waitForPod("prestop", "Running", (p) => p.status?.phase === "Running");
    await waitFor("the TERM trap installed", () => existsSync(join(o.dir, "up")), 15_000);
    await c.pods.delete("default", "prestop");
    await c.waitForGone("prestop", 60_000);
    expect(lines(join(o.dir, "log"))).toEqual(["hook-begin", "hook-end", "TERM"]);
  });

  it("is cut short by the grace period: a hook that never returns does not keep the pod", async () => {
    const o = outVolume("prestop-hang");
    await c.createPod("prestop-hang", {
      terminationGracePeriodSeconds: 2n,
      volumes: o.volumes,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "trap 'echo TERM >> /out/log; exit 0' TERM; sleep 3600 & wait"],
          volumeMounts: o.volumeMounts,
          lifecycle: { preStop: { sleep: { seconds: 3600n } } } as any,
        },
      ],
    });
    await c.waitForPod("prestop-hang", "Running", (p) => p.status?.phase === "Running");
    await c.pods.delete("default", "prestop-hang");
    await c.waitForGone("prestop-hang", 60_000);
    // After the hook's share, the container still got its SIGTERM before being killed.
    expect(lines(join(o.dir, "log"))).toEqual(["TERM"]);
  });
});

describe("postStart", () => {
  it("keeps the container out of Running until the hook returns", async () => {
    const o = outVolume("poststart");
    const marker = join(o.dir, "poststart");
    // Watched from before the pod exists: whether the hook's file was there when the first status
    // saying "running" arrived.
    let markerAtFirstRunning: boolean | undefined;
    await watchPod(
      c,
      "poststart",
      () =>
        c.createPod("poststart", {
          terminationGracePeriodSeconds: 1n,
          volumes: o.volumes,
          containers: [
            {
              name: "app",
              command: ["sh", "-c", "sleep 3600 & wait"],
              volumeMounts: o.volumeMounts,
              lifecycle: { postStart: { exec: { command: ["sh", "-c", "sleep 2; echo done > /out/poststart"] } } } as any,
            },
          ],
        }),
      (versions) => {
        if (!versions.some((p) => cstatus(p)?.state?.running)) return false;
        markerAtFirstRunning ??= existsSync(marker);
        return true;
      },
      60_000,
    );
    expect(markerAtFirstRunning).toBe(true);
    expect(readFileSync(marker, "utf8")).toBe("done\n");
    await c.pods.delete("default", "poststart", { gracePeriodSeconds: 1n });
    await c.waitForGone("poststart", 60_000);
  });

  it("kills the container when the hook fails: event FailedPostStartHook, and the reason in the terminated state", async () => {
    await c.createPod("poststart-fails", {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1n,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
          lifecycle: { postStart: { exec: { command: ["sh", "-c", "echo no database; exit 7"] } } } as any,
        },
      ],
    });
    const p = await c.waitForPod("poststart-fails", "Failed", (p) => p.status?.phase === "Failed" || p.status?.phase === "Succeeded", 60_000);
    expect(cstatus(p)!.state!.terminated!.message).toBe('PostStartHook failed: command ["sh","-c","echo no database; exit 7"] exited with 7: no database');
    const event = await waitFor("a FailedPostStartHook event", async () =>
      (await c.cp.client<Event>("Event").list("default")).items.find((e) => e.involvedObject?.name === "poststart-fails" && e.reason === "FailedPostStartHook"),
    );
    expect(event.type).toBe("Warning");
    expect(event.message).toContain("exited with 7: no database");
    await c.pods.delete("default", "poststart-fails", { gracePeriodSeconds: 0n });
    await c.waitForGone("poststart-fails", 60_000);
  });
});
