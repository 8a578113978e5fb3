import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { podDir } from "./pod-files.ts";
import { clearInitFloors, initFloorsFor, loadInitFloors, saveInitFloors } from "./reinit.ts";
import { testPod } from "./testing.ts";

const instance = (containerName: string, attempt: number, exitCode = 0): ContainerInfo => ({
  id: `${containerName}-${attempt}`,
  podUid: "u",
  podName: "p",
  podNamespace: "default",
  containerName,
  attempt,
  image: "busybox:1.36",
  imageId: "sha256:x",
  state: "exited",
  exitCode,
  createdAt: new Date(0),
  logPath: "",
});

describe("a new sandbox's init floors", () => {
  const withInits = (restartPolicy = "Always") => testPod("p", { restartPolicy, initContainers: [{ name: "setup" }, { name: "migrate" }] });

  it("count only init attempts made after the change: the next attempt of each, 0 for one that never ran", () => {
    const floors = initFloorsFor(withInits(), [instance("setup", 0), instance("setup", 1), instance("app", 2, 255)]);
    expect(floors).toEqual({ setup: 2, migrate: 0 });
  });

  it("are none for a pod without init containers, or a restartPolicy Never pod whose app containers started", () => {
    expect(initFloorsFor(testPod("p"), [instance("app", 0, 255)])).toBeUndefined();
    expect(initFloorsFor(withInits("Never"), [instance("setup", 0), instance("migrate", 0), instance("app", 0, 255)])).toBeUndefined();
    // Never, but the app containers never started: the init sequence starts over.
    expect(initFloorsFor(withInits("Never"), [instance("setup", 0)])).toEqual({ setup: 1, migrate: 0 });
  });
});

describe("init floors on disk", () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  it("survive an agent restart until cleared; a torn file counts as none", async () => {
    root = mkdtempSync(join(tmpdir(), "skiff-reinit-"));
    expect(await loadInitFloors(root, "uid-1")).toBeUndefined();
    await saveInitFloors(root, "uid-1", { setup: 2 });
    expect(await loadInitFloors(root, "uid-1")).toEqual({ setup: 2 });
    await clearInitFloors(root, "uid-1");
    expect(await loadInitFloors(root, "uid-1")).toBeUndefined();
    writeFileSync(join(podDir(root, "uid-1"), "init-floors.json"), '{"setup": 2');
    expect(await loadInitFloors(root, "uid-1")).toBeUndefined();
  });
});
