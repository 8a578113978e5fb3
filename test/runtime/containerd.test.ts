// The containerd runtime against a real containerd + runc (root, overlayfs): images imported
// from busybox-static OCI layouts, containers run, stopped, exec'd, OOM-killed and removed.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/runtime.ts";
import { chainIds } from "../../internal/runtime/containerd/oci.ts";
import type { ContainerConfig, RuntimeEvent } from "../../internal/runtime/runtime.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";

let server: ContainerdServer;
let rt: ContainerdRuntime;
let dir: string;
let v1: BuiltImage;
let v2: BuiltImage;
const events: RuntimeEvent[] = [];
const eventsCtl = new AbortController();
let eventsDone: Promise<void>;

const code = (err: unknown) => (err instanceof ConnectError ? err.code : undefined);

function config(name: string, over: Partial<ContainerConfig> = {}): ContainerConfig {
  return {
    podUid: "uid-1",
    podName: "pod-a",
    podNamespace: "default",
    containerName: name,
    attempt: 0,
    image: v1.ref,
    command: [],
    args: [],
    env: [],
    workingDir: "",
    mounts: [],
    resources: {},
    netnsPath: "",
    hostname: "pod-a",
    logPath: join(dir, "logs", "pod-a", `${name}.log`),
    ...over,
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const readLog = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
};

beforeAll(async () => {
  server = await startContainerd();
  dir = mkdtempSync(join(tmpdir(), "skiff-runtime-test-"));
  v1 = await buildBusyboxImage(join(dir, "v1"), { name: "skiff.test/busybox", tag: "v1", indexHtml: "v1\n" });
  v2 = await buildBusyboxImage(join(dir, "v2"), { name: "skiff.test/busybox", tag: "v2", indexHtml: "v2\n" });
  rt = createContainerdRuntime({ address: server.address, namespace: server.namespace });
  eventsDone = (async () => {
    for await (const ev of rt.events(eventsCtl.signal)) events.push(ev);
  })();
});

afterAll(async () => {
  eventsCtl.abort();
  await eventsDone?.catch(() => {});
  await rt?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("containerd runtime: images", () => {
  it("reports containerd's version", async () => {
    expect(await rt.version()).toMatchObject({ name: "containerd", version: expect.stringMatching(/^1\.\d+\./) });
  });

  it("builds deterministic images", async () => {
    const again = await buildBusyboxImage(join(dir, "v1-again"), { name: "skiff.test/busybox", tag: "v1", indexHtml: "v1\n" });
    expect(again.manifestDigest).toBe(v1.manifestDigest);
    expect(v2.diffIds[0]).toBe(v1.diffIds[0]);
    expect(v2.configDigest).not.toBe(v1.configDigest);
  });

  it("imports an OCI layout tarball, unpacks it and lists it", async () => {
    const [info] = await rt.importImage(v1.tarPath);
    expect(info).toEqual({ names: [v1.ref], id: v1.configDigest, digest: v1.manifestDigest, sizeBytes: expect.any(Number) });
    expect(info.sizeBytes).toBeGreaterThan(500_000);
    expect(await rt.getImage(v1.ref)).toEqual(info);
    expect(await rt.getImage(v1.configDigest)).toEqual(info);
    expect((await rt.listImages()).map((i) => i.id)).toContain(v1.configDigest);

    // Unpacked: a committed snapshot per chain ID; the config blob keeps the top one from GC.
    const chain = chainIds(v1.diffIds);
    for (const key of chain) await rt.client.snapshots.stat({ snapshotter: "overlayfs", key });
    const config = await rt.client.content.info({ digest: v1.configDigest });
    expect(config.info?.labels["containerd.io/gc.ref.snapshot.overlayfs"]).toBe(chain.at(-1));
    const manifest = await rt.client.content.info({ digest: v1.manifestDigest });
    expect(manifest.info?.labels["containerd.io/gc.ref.content.config"]).toBe(v1.configDigest);
    // No lease is left behind.
    expect((await rt.client.leases.list({})).leases).toEqual([]);
  });

  it("imports again idempotently, and a v2 sharing the base layer", async () => {
    await rt.importImage(v1.tarPath);
    const [info2] = await rt.importImage(v2.tarPath);
    expect(info2.id).toBe(v2.configDigest);
    const ids = (await rt.listImages()).map((i) => i.id).sort();
    expect(ids).toEqual([v1.configDigest, v2.configDigest].sort());
  });

  it("removes an image by name", async () => {
    await rt.removeImage(v2.ref);
    expect(await rt.getImage(v2.ref)).toBeUndefined();
    await rt.removeImage(v2.ref); // idempotent
    expect(await rt.getImage(v1.ref)).toBeDefined();
  });

  it("rejects an archive that is not an OCI layout", async () => {
    await expect(rt.importImage(join(v1.layoutDir, "index.json"))).rejects.toThrow(/not an OCI image layout|tar/i);
  });
});

describe("containerd runtime: containers", () => {
  it("creates, starts, logs, execs, stops and removes a container", async () => {
    const cfg = config("hello", { command: ["sh", "-c", "echo hello; sleep 30"] });
    const t0 = performance.now();
    const id = await rt.createContainer(cfg);
    const created = await rt.containerStatus(id);
    expect(created).toMatchObject({ id, state: "created", podUid: "uid-1", containerName: "hello", attempt: 0, imageId: v1.configDigest });
    await rt.startContainer(id);
    console.log(`create+start: ${(performance.now() - t0).toFixed(0)} ms`);

    const running = await rt.containerStatus(id);
    expect(running?.state).toBe("running");
    expect(running?.pid).toBeGreaterThan(0);
    expect(running?.startedAt).toBeInstanceOf(Date);
    await until("hello in the log", () => readLog(cfg.logPath).includes("hello"));

    const host = await rt.exec(id, ["hostname"], 5000);
    expect(host).toEqual({ exitCode: 0, stdout: "pod-a\n", stderr: "" });
    for (let i = 0; i < 5; i++) {
      // stderr written last, right before the exit, must not be lost (containerd's file:// loses it).
      expect(await rt.exec(id, ["sh", "-c", "echo out; echo err >&2; exit 3"], 5000)).toEqual({
        exitCode: 3,
        stdout: "out\n",
        stderr: "err\n",
      });
    }
    const slow = rt.exec(id, ["sleep", "20"], 300);
    await expect(slow).rejects.toSatisfy((e) => code(e) === Code.DeadlineExceeded);

    expect((await rt.listContainers()).map((c) => c.id)).toContain(id);
    await rt.stopContainer(id, 1); // sh as pid 1 has no TERM handler: killed after 1s
    const stopped = await rt.containerStatus(id);
    expect(stopped).toMatchObject({ state: "exited", exitCode: 137 });
    expect(stopped?.finishedAt).toBeInstanceOf(Date);

    await rt.removeContainer(id);
    expect(await rt.containerStatus(id)).toBeUndefined();
    await expect(rt.client.tasks.get({ containerId: id })).rejects.toSatisfy((e) => code(e) === Code.NotFound);
    await expect(rt.client.containers.get({ id })).rejects.toSatisfy((e) => code(e) === Code.NotFound);
    await expect(rt.client.snapshots.stat({ snapshotter: "overlayfs", key: id })).rejects.toSatisfy((e) => code(e) === Code.NotFound);
    await rt.removeContainer(id); // idempotent
  });

  it("lists a running container as running when containerd's task list leaves its task out", async () => {
    const id = await rt.createContainer(config("listed", { command: ["sh", "-c", "sleep 30"] }));
    await rt.startContainer(id);
    // What Tasks/List answers when the task's shim did not answer its state query within 2 s.
    const list = rt.client.tasks.list;
    rt.client.tasks.list = async (req, opts) => {
      const res = await list(req, opts);
      res.tasks = res.tasks.filter((t) => (t.containerId || t.id) !== id);
      return res;
    };
    try {
      const listed = (await rt.listContainers()).find((c) => c.id === id);
      expect(listed).toMatchObject({ state: "running", containerName: "listed" });
      expect(listed?.pid).toBeGreaterThan(0);
    } finally {
      rt.client.tasks.list = list;
      await rt.removeContainer(id);
    }
  });

  it("honours SIGTERM with a trap, and SIGKILLs after the timeout", async () => {
    const polite = await rt.createContainer(
      config("polite", { command: ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"] }),
    );
    const stubborn = await rt.createContainer(
      config("stubborn", { command: ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"] }),
    );
    await rt.startContainer(polite);
    await rt.startContainer(stubborn);
    await until("both ready", () =>
      readLog(config("polite").logPath).includes("ready") && readLog(config("stubborn").logPath).includes("ready"),
    );

    let t = Date.now();
    await rt.stopContainer(polite, 10);
    expect(Date.now() - t).toBeLessThan(5000);
    expect(await rt.containerStatus(polite)).toMatchObject({ state: "exited", exitCode: 7 });
    await until("got TERM in the log", () => readLog(config("polite").logPath).includes("got TERM"));

    t = Date.now();
    await rt.stopContainer(stubborn, 2);
    expect(Date.now() - t).toBeGreaterThanOrEqual(1900);
    expect(await rt.containerStatus(stubborn)).toMatchObject({ state: "exited", exitCode: 137 });
    await rt.stopContainer(stubborn, 2); // already stopped: returns at once

    await until("exit events", () =>
      [polite, stubborn].every((id) => events.some((e) => e.type === "exit" && e.containerId === id)),
    );
    expect(events.find((e) => e.type === "exit" && e.containerId === polite)).toMatchObject({ exitCode: 7, at: expect.any(Date) });
    await rt.removeContainer(polite);
    await rt.removeContainer(stubborn);
  });

  it("logs stdout and stderr to one file, keeping stderr written just before the exit", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const cfg = config(`crash-${i}`, { command: ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 1"] });
      const id = await rt.createContainer(cfg);
      await rt.startContainer(id);
      ids.push(id);
    }
    await until("all exited", async () => (await rt.listContainers()).filter((c) => ids.includes(c.id)).every((c) => c.state === "exited"));
    for (const [i, id] of ids.entries()) {
      expect(await rt.containerStatus(id)).toMatchObject({ state: "exited", exitCode: 1 });
      await rt.removeContainer(id); // Tasks/Delete returns once the logger has flushed
      const log = readLog(config(`crash-${i}`).logPath);
      expect(log).toMatch(/^\S+Z stdout F to-stdout\n/m); // CRI log records, each stream named
      expect(log).toMatch(/^\S+Z stderr F to-stderr\n/m);
    }
  });

  it("applies a memory limit and reports an OOM kill", async () => {
    const limit = 20 * 1024 * 1024;
    const id = await rt.createContainer(
      config("hog", {
        // dd is the container's pid 1, so the OOM kill ends the container.
        command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        resources: { memoryLimitBytes: limit },
      }),
    );
    const cgroup = `/sys/fs/cgroup/memory/${server.namespace}/${id}`;
    expect(Number(readFileSync(`${cgroup}/memory.limit_in_bytes`, "utf8"))).toBe(limit);
    try {
      await rt.startContainer(id);
      const status = await until("the OOM kill", async () => {
        const s = await rt.containerStatus(id);
        return s?.state === "exited" ? s : undefined;
      });
      // What a user sees: the exit and the reason. (containerd's /tasks/oom event may come late or
      // not at all on a loaded machine; the runtime then knows it from the cgroup's counter.)
      expect(status).toMatchObject({ exitCode: 137, oomKilled: true });
      await until("exit event", () => events.some((e) => e.type === "exit" && e.containerId === id));
    } finally {
      await rt.removeContainer(id);
    }
  });

  it("fails clearly for a command that is not in the image, leaving nothing behind", async () => {
    const before = (await rt.client.containers.list({})).containers.length;
    const err = await rt.createContainer(config("missing", { command: ["/bin/nope-not-here"] })).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(code(err)).toBe(Code.InvalidArgument);
    expect(String(err.message)).toMatch(/nope-not-here/);
    expect(String(err.message)).toMatch(/no such file or directory|not found/);
    const viaPath = await rt.createContainer(config("missing", { command: ["nope-not-here"] })).catch((e) => e);
    expect(String(viaPath.message)).toMatch(/"nope-not-here": executable file not found in \$PATH/);
    expect((await rt.client.containers.list({})).containers.length).toBe(before);
    const snaps: string[] = [];
    for await (const res of rt.client.snapshots.list({ snapshotter: "overlayfs" })) snaps.push(...res.info.map((i) => i.name));
    expect(snaps.filter((s) => !s.startsWith("sha256:"))).toEqual([]);
  });

  it("rejects an image that is not present", async () => {
    await expect(rt.createContainer(config("ghost", { image: "skiff.test/ghost:v9" }))).rejects.toSatisfy(
      (e) => code(e) === Code.NotFound,
    );
  });

  it("benchmark: create+start of a container", async () => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const id = await rt.createContainer(config(`bench-${i}`, { command: ["sleep", "30"] }));
      await rt.startContainer(id);
      times.push(performance.now() - t0);
      await rt.stopContainer(id, 0);
      await rt.removeContainer(id);
    }
    times.sort((a, b) => a - b);
    console.log(`create+start p50 ${times[2].toFixed(0)} ms (min ${times[0].toFixed(0)}, max ${times[4].toFixed(0)})`);
    expect(await rt.listContainers()).toEqual([]);
    // No shim or log process of ours is left.
    const ours = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir);
      } catch {
        return false;
      }
    });
    expect(ours).toEqual([]);
  });
});
