// The containerd runtime across a machine reboot (harness: ContainerdServer.reboot) and a killed
// shim, on a real containerd + runc: how each container reads back once its task is gone.
// Exits seen before the reboot are kept on the container records; a container that was running
// is reported lost (exited, 255), never running and never without a state.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/runtime.ts";
import type { ContainerConfig, ContainerInfo } from "../../internal/runtime/runtime.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";

let server: ContainerdServer;
let rt: ContainerdRuntime;
let dir: string;
let image: BuiltImage;

function config(name: string, command: string[]): ContainerConfig {
  return {
    podUid: "uid-r",
    podName: "pod-r",
    podNamespace: "default",
    containerName: name,
    attempt: 0,
    image: image.ref,
    command,
    args: [],
    env: [],
    workingDir: "",
    mounts: [],
    resources: {},
    netnsPath: "",
    hostname: "pod-r",
    logPath: join(dir, "logs", `${name}.log`),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The shim serving one container of this containerd. */
function shimOf(id: string): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (args[0]?.includes("containerd-shim") && args.includes(server.address) && args[args.indexOf("-id") + 1] === id) return Number(name);
    } catch {
      // gone
    }
  }
  return undefined;
}

const pick = (c: ContainerInfo | undefined) => c && { state: c.state, exitCode: c.exitCode, lost: c.lost };

beforeAll(async () => {
  server = await startContainerd();
  dir = mkdtempSync(join(tmpdir(), "skiff-runtime-reboot-"));
  image = await buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1" });
  rt = createContainerdRuntime({ address: server.address, namespace: server.namespace });
  await rt.importImage(image.tarPath);
});

afterAll(async () => {
  await rt?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("containerd runtime: tasks that are gone", () => {
  it.each([
    ["containerd's state on tmpfs", false],
    ["containerd's state on disk (dead shims' bundles found at start)", true],
  ])("after a reboot, %s: an exit seen before is kept; a running container is lost (255); a never started one is 'created'", async (_what, stateOnDisk) => {
    const exited = await rt.createContainer(config("exited", ["sh", "-c", "exit 3"]));
    await rt.startContainer(exited);
    const running = await rt.createContainer(config("running", ["sleep", "3600"]));
    await rt.startContainer(running);
    const fresh = await rt.createContainer(config("fresh", ["sleep", "3600"]));
    await until("the exit", async () => ((await rt.containerStatus(exited))?.state === "exited" ? true : undefined));
    // The listing records the exit on the record (the task holding it will not survive).
    expect(pick((await rt.listContainers()).find((c) => c.id === exited))).toEqual({ state: "exited", exitCode: 3, lost: undefined });

    await server.reboot({ stateOnDisk });
    const after = await rt.listContainers();
    const byId = new Map(after.map((c) => [c.id, c]));
    expect(pick(byId.get(exited))).toEqual({ state: "exited", exitCode: 3, lost: undefined });
    expect(pick(byId.get(running))).toEqual({ state: "exited", exitCode: 255, lost: true });
    expect(byId.get(running)!.finishedAt).toBeInstanceOf(Date);
    expect(pick(byId.get(fresh))).toEqual({ state: "created", exitCode: undefined, lost: undefined });
    // Read again, alone: the same (recorded, not guessed anew).
    expect(await rt.containerStatus(running)).toEqual(byId.get(running));

    for (const id of [exited, running, fresh]) await rt.removeContainer(id);
    expect(await rt.listContainers()).toEqual([]);
  });

  it("kill -9 of a shim: its container reads as lost, not running", async () => {
    const id = await rt.createContainer(config("victim", ["sleep", "3600"]));
    await rt.startContainer(id);
    const pid = (await rt.containerStatus(id))!.pid!;
    const shim = shimOf(id);
    expect(shim).toBeGreaterThan(0);
    process.kill(shim!, "SIGKILL");
    const lost = await until("the container lost", async () => {
      const c = await rt.containerStatus(id);
      return c?.state === "running" ? undefined : c;
    });
    expect(pick(lost)).toEqual({ state: "exited", exitCode: 255, lost: true });
    // containerd's clean-up of a dead shim kills the container's processes.
    await until("the container's process gone", async () => {
      try {
        process.kill(pid, 0);
        return readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2] === "Z" ? true : undefined;
      } catch {
        return true;
      }
    });
    await rt.removeContainer(id);
  });
});
