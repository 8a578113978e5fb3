import { create } from "@bufbuild/protobuf";
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ContainerSchema, ProbeSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import { runProbe } from "./probe-check.ts";
import { cond, cstatus, startHarness, waitFor, type Harness } from "./testing.ts";

let h: Harness | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of closers.splice(0)) c();
});

describe("probes in a pod", () => {
  it("an agent restart does not flap Ready of an adopted, ready container", async () => {
    h = await startHarness();
    h.runtime.setExec(() => ({ exitCode: 0, stdout: "", stderr: "" }));
    await h.createPod("steady", {
      containers: [{ name: "app", readinessProbe: { exec: { command: ["check"] }, periodSeconds: 1, failureThreshold: 1, successThreshold: 1, timeoutSeconds: 1 } as any }],
    });
    const p = await h.waitForPod("steady", "Ready", (p) => cond(p, "Ready") === "True");
    const seen: string[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      try {
        for await (const ev of h!.pods.watch("default", { resourceVersion: p.metadata!.resourceVersion, fieldSelector: "metadata.name=steady", signal: ac.signal })) {
          if (ev.type === "MODIFIED") seen.push(cond(ev.object, "Ready") ?? "");
        }
      } catch {
        // aborted
      }
    })();
    await h.restartAgent();
    await new Promise((r) => setTimeout(r, 2500)); // a few probe periods and a resync
    ac.abort();
    await watching;
    expect(seen.filter((r) => r !== "True")).toEqual([]);
  });

  it("a readiness exec probe flips the container's ready flag and the pod's Ready condition", async () => {
    h = await startHarness();
    let healthy = true;
    h.runtime.setExec((_id, cmd) => ({ exitCode: cmd[0] === "check" && healthy ? 0 : 1, stdout: "", stderr: "" }));
    await h.createPod("ready", {
      containers: [{ name: "app", readinessProbe: { exec: { command: ["check"] }, periodSeconds: 1, failureThreshold: 1, successThreshold: 1, timeoutSeconds: 1 } as any }],
    });
    let p = await h.waitForPod("ready", "Ready", (p) => cond(p, "Ready") === "True");
    expect(cstatus(p)!.ready).toBe(true);
    healthy = false;
    p = await h.waitForPod("ready", "not Ready", (p) => cond(p, "Ready") === "False");
    expect(cstatus(p)!.ready).toBe(false);
    expect(p.status!.conditions.find((c) => c.type === "ContainersReady")!.message).toBe("containers with unready status: [app]");
    // Not ready is not a restart.
    expect(cstatus(p)!.restartCount).toBe(0);
    expect(p.status!.phase).toBe("Running");
    healthy = true;
    await h.waitForPod("ready", "Ready again", (p) => cond(p, "Ready") === "True");
  });

  it("a pod whose readiness probe never succeeds is Running but not Ready", async () => {
    h = await startHarness();
    h.runtime.setExec(() => ({ exitCode: 1, stdout: "", stderr: "" }));
    await h.createPod("unready", { containers: [{ name: "app", readinessProbe: { exec: { command: ["check"] }, periodSeconds: 1, failureThreshold: 1, successThreshold: 1, timeoutSeconds: 1 } as any }] });
    const p = await h.waitForPod("unready", "Running", (p) => p.status?.phase === "Running");
    await new Promise((r) => setTimeout(r, 300));
    expect(cond(await h.getPod("unready"), "Ready")).toBe("False");
    expect(cstatus(p)!.started).toBe(true);
  });

  it("a failing liveness probe kills and restarts the container, with the reason in lastState", async () => {
    h = await startHarness({ crashLoopBackoff: { initialMs: 50, maxMs: 100 } });
    const stops: [string, number][] = [];
    const orig = h.runtime.stopContainer;
    h.runtime.stopContainer = async (id, t) => {
      stops.push([id, t]);
      return orig(id, t);
    };
    let alive = true;
    h.runtime.setExec(() => ({ exitCode: alive ? 0 : 1, stdout: "", stderr: alive ? "" : "unhealthy" }));
    const created = await h.createPod("live", {
      terminationGracePeriodSeconds: 7n,
      containers: [{ name: "app", livenessProbe: { exec: { command: ["alive"] }, periodSeconds: 1, failureThreshold: 2, successThreshold: 1, timeoutSeconds: 1 } as any }],
    });
    await h.waitForPod("live", "Running", (p) => p.status?.phase === "Running");
    const [first] = await h.containersOf(created);
    alive = false;
    await waitFor("a stop", () => stops.length > 0);
    alive = true;
    const p = await h.waitForPod("live", "restarted", (p) => cstatus(p)?.restartCount === 1 && !!cstatus(p)?.state?.running);
    expect(stops[0]).toEqual([first.id, 7]);
    const last = cstatus(p)!.lastState!.terminated!;
    expect(last.containerId).toBe(`fake://${first.id}`);
    expect(last.exitCode).toBe(137);
    expect(last.message).toBe('Liveness probe failed: command ["alive"] exited with 1: unhealthy');
  });

  it("a startup probe holds off liveness and readiness until it succeeds", async () => {
    h = await startHarness();
    let booted = false;
    const seen: string[] = [];
    h.runtime.setExec((_id, cmd) => {
      seen.push(cmd[0]);
      if (cmd[0] === "booted") return { exitCode: booted ? 0 : 1, stdout: "", stderr: "" };
      return { exitCode: 0, stdout: "", stderr: "" };
    });
    const probe = (cmd: string, failureThreshold: number) => ({ exec: { command: [cmd] }, periodSeconds: 1, failureThreshold, successThreshold: 1, timeoutSeconds: 1 });
    await h.createPod("slow", {
      containers: [{ name: "app", startupProbe: probe("booted", 1000) as any, livenessProbe: probe("alive", 1) as any, readinessProbe: probe("ready", 1) as any }],
    });
    await h.waitForPod("slow", "Running", (p) => p.status?.phase === "Running");
    await waitFor("startup probed", () => seen.filter((s) => s === "booted").length >= 3);
    const p = await h.getPod("slow");
    expect(cstatus(p)!.started).toBe(false);
    expect(cstatus(p)!.ready).toBe(false);
    expect(seen.filter((s) => s !== "booted")).toEqual([]);
    booted = true;
    const started = await h.waitForPod("slow", "started and Ready", (p) => cstatus(p)?.started === true && cond(p, "Ready") === "True");
    expect(seen).toContain("alive");
    // Failures below failureThreshold did not kill it.
    expect(cstatus(started)!.restartCount).toBe(0);
  });

  it("a new pod is not Ready before its readiness probe passes, even in the status written while its container starts", async () => {
    // A slow start (a loaded machine): the first status, due 50 ms into the pod's first sync, is
    // computed once the container runs but before the prober has seen it.
    h = await startHarness({ firstStatusDelayMs: 50 });
    let healthy = false;
    h.runtime.setExec(() => ({ exitCode: healthy ? 0 : 1, stdout: "", stderr: "" }));
    // Past the sync's first look, container lists wait for the container to run, and the start
    // returns only after the first-status timer fired: that status sees a running container whose
    // probe never ran. (The agent lists nothing else: it has no other pod.)
    const { startContainer, listContainers } = h.runtime;
    let lists = 0;
    let running!: () => void;
    const isRunning = new Promise<void>((r) => (running = r));
    let started!: () => void;
    const startReturned = new Promise<void>((r) => (started = r));
    h.runtime.listContainers = async () => {
      if (++lists > 1) await isRunning;
      return listContainers();
    };
    h.runtime.startContainer = async (id) => {
      await startContainer(id);
      running();
      await new Promise((r) => setTimeout(r, 300));
      started();
    };
    const created = await h.createPod("fresh", {
      containers: [{ name: "app", readinessProbe: { exec: { command: ["check"] }, periodSeconds: 1, failureThreshold: 3, successThreshold: 1, timeoutSeconds: 1 } as any }],
    });
    const ready: string[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      for await (const ev of h!.pods.watch("default", { resourceVersion: created.metadata!.resourceVersion, fieldSelector: "metadata.name=fresh", signal: ac.signal })) {
        if (ev.type === "MODIFIED" && ev.object.status?.phase === "Running") ready.push(cond(ev.object, "Ready") ?? "");
      }
    })().catch((err) => {
      if (!ac.signal.aborted) throw err;
    });
    await startReturned;
    healthy = true;
    await waitFor("Ready, after not Ready, on the watch", () => ready.includes("False") && ready.lastIndexOf("True") > ready.indexOf("False"));
    ac.abort();
    await watching;
    // Running and not Ready until the probe passed, then Ready: never Ready before.
    expect(ready).toEqual(["False", "True"]);
  });
});

describe("probe actions", () => {
  const target = (ports: { name: string; containerPort: number }[] = []) => ({
    runtime: createFakeRuntime(),
    containerId: "x",
    container: create(ContainerSchema, { name: "app", image: "i", ports: ports as any }),
    podIP: "127.0.0.1",
  });

  async function listen(server: net.Server): Promise<number> {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    closers.push(() => server.close());
    return (server.address() as net.AddressInfo).port;
  }

  it("httpGet: 200-399 is success, other codes fail with the code; named ports resolve", async () => {
    const port = await listen(http.createServer((req, res) => {
      res.writeHead(req.url === "/healthz" ? 204 : 503);
      res.end();
    }));
    const ok = await runProbe(create(ProbeSchema, { httpGet: { path: "/healthz", port: "http" } }), target([{ name: "http", containerPort: port }]), 1000);
    expect(ok).toEqual({ success: true, message: "" });
    const bad = await runProbe(create(ProbeSchema, { httpGet: { path: "/other", port: String(port) } }), target(), 1000);
    expect(bad).toEqual({ success: false, message: "HTTP probe failed with statuscode: 503" });
  });

  it("httpGet: a server slower than the timeout fails", async () => {
    const port = await listen(http.createServer(() => {}));
    const res = await runProbe(create(ProbeSchema, { httpGet: { path: "/", port: String(port) } }), target(), 100);
    expect(res.success).toBe(false);
    expect(res.message).toContain("timeout");
  });

  it("tcpSocket: an accepted connection is success, a refused one a failure", async () => {
    const port = await listen(net.createServer((s) => s.end()));
    expect((await runProbe(create(ProbeSchema, { tcpSocket: { port: String(port) } }), target(), 1000)).success).toBe(true);
    const closed = net.createServer();
    const dead = await listen(closed);
    closed.close();
    const res = await runProbe(create(ProbeSchema, { tcpSocket: { port: String(dead) } }), target(), 1000);
    expect(res.success).toBe(false);
    expect(res.message).toContain("ECONNREFUSED");
  });

  it("an unknown named port is a failure that says so", async () => {
    const res = await runProbe(create(ProbeSchema, { tcpSocket: { port: "web" } }), target(), 1000);
    expect(res).toEqual({ success: false, message: 'port "web" is neither a number nor a named port of container "app"' });
  });
});
