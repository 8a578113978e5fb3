// Termination messages on real parts (cluster.ts): what a container writes to its
// terminationMessagePath becomes the terminated state's message, shown by `skiffctl describe pod`;
// with FallbackToLogsOnError a failed container with nothing in its file gets its log's tail.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { cstatus, startCluster, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const finished = (name: string) => c.waitForPod(name, "finished", (p) => p.status?.phase === "Failed" || p.status?.phase === "Succeeded", 60_000);

describe("termination messages", () => {
  it("reads /dev/termination-log (and a path of the container's choosing) into the terminated state, shown by describe", async () => {
    await c.createPod("bye", {
      restartPolicy: "Never",
      containers: [
        { name: "app", command: ["sh", "-c", "echo 'config file missing: /etc/app.yaml' > /dev/termination-log; exit 2"] },
        { name: "custom", terminationMessagePath: "/tmp/why", command: ["sh", "-c", "printf 'done: 3 jobs' > /tmp/why"] },
      ],
    });
    const p = await finished("bye");
    expect(cstatus(p, "app")!.state!.terminated).toMatchObject({ exitCode: 2, reason: "Error", message: "config file missing: /etc/app.yaml\n" });
    expect(cstatus(p, "custom")!.state!.terminated).toMatchObject({ exitCode: 0, reason: "Completed", message: "done: 3 jobs" });

    const r = await spawnSkiffctl(c.cp.server.url, ["describe", "pod", "bye"]).done;
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Message:\s+config file missing: \/etc\/app\.yaml/);
    expect(r.out).toMatch(/Message:\s+done: 3 jobs/);
    await c.pods.delete("default", "bye", { gracePeriodSeconds: 0n });
    await c.waitForGone("bye", 60_000);
  });

  it("keeps at most 4 KiB of the file", async () => {
    await c.createPod("long", {
      restartPolicy: "Never",
      containers: [{ name: "app", command: ["sh", "-c", "head -c 10000 /dev/zero | tr '\\0' x > /dev/termination-log; exit 1"] }],
    });
    const p = await finished("long");
    expect(cstatus(p)!.state!.terminated!.message).toBe("x".repeat(4096));
    await c.pods.delete("default", "long", { gracePeriodSeconds: 0n });
    await c.waitForGone("long", 60_000);
  });

  it("FallbackToLogsOnError: a failed container with an empty file gets the end of its log; File (default) gets nothing", async () => {
    await c.createPod("fallback", {
      restartPolicy: "Never",
      containers: [
        { name: "app", terminationMessagePolicy: "FallbackToLogsOnError", command: ["sh", "-c", "for i in $(seq 1 100); do echo line $i; done; echo fatal: no disk >&2; exit 1"] },
        { name: "plain", command: ["sh", "-c", "echo some output; exit 1"] },
      ],
    });
    const p = await finished("fallback");
    const lines = cstatus(p, "app")!.state!.terminated!.message.split("\n");
    // The last 80 lines, both streams, in order.
    expect(lines).toHaveLength(80);
    expect(lines[0]).toBe("line 22");
    expect(lines.at(-2)).toBe("line 100");
    expect(lines.at(-1)).toBe("fatal: no disk");
    expect(cstatus(p, "plain")!.state!.terminated!.message).toBe("");
    await c.pods.delete("default", "fallback", { gracePeriodSeconds: 0n });
    await c.waitForGone("fallback", 60_000);
  });
});
