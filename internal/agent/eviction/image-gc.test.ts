import { describe, expect, it } from "vitest";
import type { ImageInfo } from "../../runtime/runtime.ts";
import { createFakeRuntime } from "../../runtime/fake/fake.ts";
import { bytesToFree, checkImageGcPolicy, createImageGc, imagesToRemove } from "./image-gc.ts";

const img = (id: string, sizeBytes: number): ImageInfo => ({ names: [`r/${id}:1`], id, digest: id, sizeBytes });

describe("bytesToFree", () => {
  const policy = { highPercent: 85, lowPercent: 80 };
  it("is nothing below the high threshold, and down to the low one at or above it", () => {
    expect(bytesToFree({ capacity: 100n, available: 16n }, policy)).toBe(0n); // 84% used
    expect(bytesToFree({ capacity: 100n, available: 15n }, policy)).toBe(5n); // 85% used → 80%
    expect(bytesToFree({ capacity: 1000n, available: 50n }, policy)).toBe(150n);
  });
});

describe("checkImageGcPolicy", () => {
  it("refuses a low threshold above the high one, or a percent out of range, naming the flags", () => {
    expect(() => checkImageGcPolicy({ highPercent: 70, lowPercent: 80 })).toThrow(/--image-gc-low-threshold \(80\) must not be above --image-gc-high-threshold \(70\)/);
    expect(() => checkImageGcPolicy({ highPercent: 101, lowPercent: 80 })).toThrow(/--image-gc-high-threshold must be a whole percent from 0 to 100/);
  });
});

describe("imagesToRemove", () => {
  it("takes unused images least recently used first until enough is freed, never one in use", () => {
    const images = [img("a", 100), img("b", 100), img("c", 100), img("d", 100)];
    const lastUsed = new Map([["a", 30], ["b", 10], ["c", 20], ["d", 0]]);
    const inUse = new Set(["d"]);
    expect(imagesToRemove(images, inUse, lastUsed, 150n).map((i) => i.id)).toEqual(["b", "c"]);
    expect(imagesToRemove(images, inUse, lastUsed, 10_000n).map((i) => i.id)).toEqual(["b", "c", "a"]);
    expect(imagesToRemove(images, inUse, lastUsed, 0n)).toEqual([]);
  });
});

describe("createImageGc on the fake runtime", () => {
  it("removes the image used longest ago, keeps images any container (even an exited one) uses", async () => {
    const runtime = createFakeRuntime({ images: ["old:1", "recent:1", "running:1", "exited:1"] });
    let t = 1000;
    const gc = createImageGc({ runtime, now: () => t });
    const labels = { podUid: "u", podName: "p", podNamespace: "default", attempt: 0 };
    const base = { ...labels, command: ["sleep"], args: [], env: [], workingDir: "", mounts: [], resources: {}, netnsPath: "", hostname: "p", logPath: "" };
    const recent = await runtime.createContainer({ ...base, containerName: "r", image: "recent:1" });
    await gc.track(); // t=1000: old first seen unused; recent in use
    t = 2000;
    await gc.track(); // t=2000: recent still in use
    await runtime.removeContainer(recent);
    await runtime.createContainer({ ...base, containerName: "a", image: "running:1" }).then((id) => runtime.startContainer(id));
    await runtime.createContainer({ ...base, containerName: "b", image: "exited:1" });
    t = 3000;
    expect((await gc.collect(1n)).map((i) => i.names[0])).toEqual(["old:1"]);
    expect((await gc.collect(10_000_000n)).map((i) => i.names[0])).toEqual(["recent:1"]);
    expect((await runtime.listImages()).map((i) => i.names[0]).sort()).toEqual(["exited:1", "running:1"]);
  });
});
