// Shims that outlive their container, on a real containerd + runc (runtime/containerd/shims.ts).
// containerd ends a shim on Tasks/Delete but gives it a few seconds only; on a loaded machine the
// shim can stay behind with no record left that names it (one did in a 2,000-cycle soak). Here
// such a shim is made on purpose — the container record deleted while its task still runs, which
// leaves the same thing: a shim process of this containerd and namespace whose id no record has —
// and the runtime must end it (task and shim), while the shims of live containers stay.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/runtime.ts";
import type { ContainerConfig } from "../../internal/runtime/runtime.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";

let server: ContainerdServer;
let rt: ContainerdRuntime;
let dir: string;
let image: BuiltImage;

function config(name: string): ContainerConfig {
  return {
    podUid: "uid-s",
    podName: "pod-s",
    podNamespace: "default",
    containerName: name,
    attempt: 0,
    image: image.ref,
    command: ["sleep", "3600"],
    args: [],
    env: [],
    workingDir: "",
    mounts: [],
    resources: {},
    netnsPath: "",
    hostname: "pod-s",
    logPath: join(dir, "logs", `${name}.log`),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Shim pids of this containerd, by the container id they serve (not the short-lived `start` and `delete` runs of the shim binary). */
function shims(): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (args[0]?.includes("containerd-shim") && args.includes(server.address) && !args.includes("start") && !args.includes("delete")) out.set(args[args.indexOf("-id") + 1]!, Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] !== "Z";
  } catch {
    return false;
  }
};

/** A running container whose record is then deleted: its task, process and shim go on. */
async function orphanedShim(runtime: ContainerdRuntime, name: string): Promise<{ id: string; shim: number; pid: number }> {
  const id = await runtime.createContainer(config(name));
  await runtime.startContainer(id);
  const pid = (await runtime.containerStatus(id))!.pid!;
  await runtime.client.containers.delete({ id });
  const shim = shims().get(id);
  expect(shim, "the shim outlives the record").toBeGreaterThan(0);
  expect(alive(pid)).toBe(true);
  return { id, shim: shim!, pid };
}

beforeAll(async () => {
  server = await startContainerd();
  dir = mkdtempSync(join(tmpdir(), "skiff-runtime-shims-"));
  image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1" });
  // Sweeps only when asked (or when created): the automatic sweep after removals is tested apart.
  rt = createContainerdRuntime({ address: server.address, namespace: server.namespace, shimGraceMs: 3_600_000 });
  await rt.importImage(image.tarPath);
}, 120_000);

afterAll(async () => {
  await rt?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("containerd runtime: shims that outlive their container", () => {
  it("are ended with their task; the shims of live containers stay", async () => {
    const live = await rt.createContainer(config("live"));
    await rt.startContainer(live);
    const orphan = await orphanedShim(rt, "orphan");

    expect(await rt.sweepShims()).toEqual([orphan.id]);
    await until("the orphaned shim and its container's process gone", () => (!alive(orphan.shim) && !alive(orphan.pid)) || undefined);
    expect((await rt.containerStatus(live))?.state).toBe("running");
    expect(shims().has(live)).toBe(true);
    expect(await rt.sweepShims()).toEqual([]);
    await rt.removeContainer(live);
  });

  it("are looked for on their own a while after a removal", async () => {
    // Its sweep at creation has read /proc before the orphan below exists: only the sweep after
    // the removal can end it.
    const quick = createContainerdRuntime({ address: server.address, namespace: server.namespace, shimGraceMs: 500 });
    try {
      const orphan = await orphanedShim(quick, "orphan-2");
      const other = await quick.createContainer(config("other"));
      await quick.removeContainer(other);
      await until("the orphaned shim and its container's process gone", () => (!alive(orphan.shim) && !alive(orphan.pid) && !shims().has(orphan.id)) || undefined);
    } finally {
      await quick.close();
    }
  });

  it("create → start → remove churn leaves no shim behind", async () => {
    const churn = async (n: number) => {
      const id = await rt.createContainer(config(`churn-${n}`));
      // Half are removed right after create, before any start: a task never started.
      if (n % 2 === 0) await rt.startContainer(id);
      await rt.removeContainer(id);
    };
    for (let wave = 0; wave < 5; wave++) await Promise.all([0, 1, 2, 3, 4, 5].map((i) => churn(wave * 6 + i)));
    expect(await rt.listContainers()).toEqual([]);
    // A shim exits a moment after its task is deleted; any still there after the sweep is a leak.
    await until("no shim left", async () => {
      await rt.sweepShims();
      return shims().size === 0 || undefined;
    });
  });
});
