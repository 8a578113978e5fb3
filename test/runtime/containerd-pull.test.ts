// pullImage end to end: a real registry (docker-registry, pushed to with skopeo) → the pull
// client → containerd's content store → image record → unpacked snapshots → a running container.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContainerdRuntime, type ContainerdRuntime } from "../../internal/runtime/containerd/runtime.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { pushOciLayout, startRegistry, type RegistryServer } from "../harness/registry.ts";

let containerd: ContainerdServer;
let registry: RegistryServer;
let rt: ContainerdRuntime;
let dir: string;
let v1: BuiltImage;
let v2: BuiltImage;

beforeAll(async () => {
  [containerd, registry] = await Promise.all([startContainerd(), startRegistry()]);
  dir = mkdtempSync(join(tmpdir(), "skiff-pull-test-"));
  v1 = await buildBusyboxImage(join(dir, "v1"), { name: "skiff.test/busybox", tag: "v1", indexHtml: "v1\n" });
  v2 = await buildBusyboxImage(join(dir, "v2"), { name: "skiff.test/busybox", tag: "v2", indexHtml: "v2\n" });
  await pushOciLayout(v1.layoutDir, registry.host, "team/busybox:v1");
  await pushOciLayout(v2.layoutDir, registry.host, "team/busybox:v2");
  rt = createContainerdRuntime({ address: containerd.address, namespace: containerd.namespace });
});

afterAll(async () => {
  await rt?.close();
  await Promise.all([containerd?.stop(), registry?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("containerd runtime: pull", () => {
  it("pulls, unpacks and runs an image from a registry", async () => {
    const ref = `${registry.host}/team/busybox:v1`;
    const t0 = performance.now();
    const info = await rt.pullImage(ref);
    console.log(`pull: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(info).toMatchObject({ names: [ref], id: v1.configDigest, digest: v1.manifestDigest });
    expect(await rt.getImage(ref)).toEqual(info);
    expect((await rt.client.leases.list({})).leases).toEqual([]);

    const logPath = join(dir, "logs", "page.log");
    const id = await rt.createContainer({
      podUid: "uid-p",
      podName: "pulled",
      podNamespace: "default",
      containerName: "page",
      attempt: 0,
      image: ref,
      command: ["cat", "/www/index.html"],
      args: [],
      env: [],
      workingDir: "",
      mounts: [],
      resources: {},
      netnsPath: "",
      hostname: "pulled",
      logPath,
    });
    await rt.startContainer(id);
    await rt.stopContainer(id, 5);
    for (let i = 0; i < 100 && !readFileSync(logPath, "utf8").includes("v1"); i++) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(logPath, "utf8")).toMatch(/^\S+Z stdout F v1\n$/); // one CRI log record
    expect(await rt.containerStatus(id)).toMatchObject({ state: "exited", exitCode: 0, imageId: v1.configDigest });
    await rt.removeContainer(id);
  });

  it("pulls a second tag sharing the base layer, and again idempotently", async () => {
    const ref = `${registry.host}/team/busybox:v2`;
    const info = await rt.pullImage(ref);
    expect(info.id).toBe(v2.configDigest);
    expect((await rt.pullImage(ref)).id).toBe(v2.configDigest);
    expect((await rt.listImages()).map((i) => i.id).sort()).toEqual([v1.configDigest, v2.configDigest].sort());
  });

  it("fails with the registry's message for an unknown tag", async () => {
    await expect(rt.pullImage(`${registry.host}/team/busybox:nope`)).rejects.toThrow(/nope|unknown|not found/i);
  });
});
