// gRPC probes on real parts (cluster.ts): the agent calls grpc.health.v1.Health/Check at the pod's
// IP. The test image has no gRPC server, so the test runs a real one (grpc-health-server.ts, on
// @grpc/grpc-js) inside the pod's network namespace, and flips its answers.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { condition, cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

const SERVER = join(dirname(fileURLToPath(import.meta.url)), "grpc-health-server.ts");
const PORT = 50051;

let c: Cluster;
const servers: ChildProcessWithoutNullStreams[] = [];

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  for (const s of servers) s.kill();
  await c?.stop();
}, 120_000);

/** Starts the health server in the pod's netns; `set` changes a service's status. */
async function healthServerIn(uid: string) {
  const child = spawn("ip", ["netns", "exec", `${c.networkName}-${uid}`, process.execPath, SERVER, String(PORT)], { stdio: ["pipe", "pipe", "pipe"] });
  servers.push(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  await waitFor(`the health server listening (stderr: ${err})`, () => out.includes("listening"), 30_000);
  return {
    async set(service: string, status: string) {
      const before = out.split("\n").length;
      child.stdin.write(`${service} ${status}\n`);
      await waitFor("the status set", () => out.split("\n").length > before, 10_000);
    },
  };
}

describe("gRPC probes", () => {
  it("readiness follows grpc.health.v1 answers from a server at the pod's IP, both ways", async () => {
    const created = await c.createPod("grpc", {
      terminationGracePeriodSeconds: 1n,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
          readinessProbe: { grpc: { port: PORT, service: "app" }, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 1, successThreshold: 1 } as any,
        },
      ],
    });
    await c.waitForPod("grpc", "running, not ready", (p) => cstatus(p)?.state?.running !== undefined && condition(p, "Ready") === "False");
    const server = await healthServerIn(created.metadata!.uid);

    await server.set("app", "SERVING");
    await c.waitForPod("grpc", "Ready", (p) => condition(p, "Ready") === "True", 30_000);
    await server.set("app", "NOT_SERVING");
    const p = await c.waitForPod("grpc", "not Ready", (p) => condition(p, "Ready") === "False", 30_000);
    expect(cstatus(p)!.restartCount).toBe(0);
    await server.set("app", "SERVING");
    await c.waitForPod("grpc", "Ready again", (p) => condition(p, "Ready") === "True", 30_000);
    await c.pods.delete("default", "grpc", { gracePeriodSeconds: 1n });
    await c.waitForGone("grpc", 60_000);
  });

  it("a gRPC startup probe holds liveness back until SERVING; a failing gRPC liveness probe then restarts the container", async () => {
    const created = await c.createPod("grpc-live", {
      terminationGracePeriodSeconds: 1n,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
          // The startup probe holds liveness back until the server (started after the container)
          // says SERVING; then NOT_SERVING makes the liveness probe kill the container.
          startupProbe: { grpc: { port: PORT }, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 1000, successThreshold: 1 } as any,
          livenessProbe: { grpc: { port: PORT }, periodSeconds: 1, timeoutSeconds: 2, failureThreshold: 1, successThreshold: 1 } as any,
        },
      ],
    });
    await c.waitForPod("grpc-live", "running", (p) => cstatus(p)?.state?.running !== undefined);
    const server = await healthServerIn(created.metadata!.uid);
    await server.set("-", "SERVING");
    await c.waitForPod("grpc-live", "started", (p) => cstatus(p)?.started === true, 30_000);
    await server.set("-", "NOT_SERVING");
    const p = await c.waitForPod("grpc-live", "restarted", (p) => (cstatus(p)?.restartCount ?? 0) >= 1, 60_000);
    expect(cstatus(p)!.lastState!.terminated!.message).toBe('Liveness probe failed: service unhealthy (responded with "NOT_SERVING")');
    await c.pods.delete("default", "grpc-live", { gracePeriodSeconds: 1n });
    await c.waitForGone("grpc-live", 60_000);
  });
});
