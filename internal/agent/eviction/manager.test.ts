import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { createFakeRuntime } from "../../runtime/fake/fake.ts";
import { testPod as baseTestPod } from "../testing.ts";
import { createEvictionManager, CRITICAL_PRIORITY } from "./manager.ts";
import { parseEvictionHard, type Observations } from "./thresholds.ts";

const Mi = 1024n * 1024n;

/** A test pod with a uid (the manager evicts a pod once, by uid). */
function testPod(name: string, spec?: Parameters<typeof baseTestPod>[1]): Pod {
  const p = baseTestPod(name, spec);
  p.metadata!.uid = `uid-${name}`;
  return p;
}
const log = pino({ level: "silent" });

function setUp(obs: { current: Observations }, usage: Record<string, bigint>, pods: Pod[], transitionMs = 60_000) {
  const evicted: { name: string; message: string }[] = [];
  const runtime = createFakeRuntime({ images: ["unused:1", "used:1"] });
  const m = createEvictionManager({
    runtime,
    rootDir: "/nonexistent",
    thresholds: parseEvictionHard(""),
    activePods: () => pods.filter((p) => !evicted.some((e) => e.name === p.metadata!.name)),
    evict: (pod, message) => evicted.push({ name: pod.metadata!.name, message }),
    log,
    transitionMs,
    observe: async () => obs.current,
    usage: async (pod) => usage[pod.metadata!.name] ?? 0n,
  });
  return { m, evicted, runtime };
}

const calm: Observations = { "memory.available": { available: 4000n * Mi, capacity: 8000n * Mi } };
const low: Observations = { "memory.available": { available: 50n * Mi, capacity: 8000n * Mi } };

describe("the eviction manager", () => {
  it("reports MemoryPressure and evicts one pod per pass, in ranking order, never a critical pod", async () => {
    const obs = { current: low };
    const pods = [testPod("small"), testPod("big"), testPod("critical", { priority: CRITICAL_PRIORITY })];
    const { m, evicted } = setUp(obs, { small: 10n * Mi, big: 500n * Mi, critical: 9000n * Mi }, pods);
    await m.pass();
    expect(m.pressure()).toEqual({ MemoryPressure: "the node crossed the eviction threshold memory.available<100Mi", DiskPressure: undefined });
    expect(evicted).toEqual([{ name: "big", message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki." }]);
    await m.pass();
    expect(evicted.map((e) => e.name)).toEqual(["big", "small"]);
    await m.pass();
    expect(evicted.map((e) => e.name)).toEqual(["big", "small"]);
  });

  it("waits for the last evicted pod to end before evicting another (its resources are not freed yet)", async () => {
    const pods = [testPod("a"), testPod("b")];
    const stillActive = new Set(["a", "b"]);
    const evicted: string[] = [];
    const m = createEvictionManager({
      runtime: createFakeRuntime(),
      rootDir: "/nonexistent",
      thresholds: parseEvictionHard(""),
      activePods: () => pods.filter((p) => stillActive.has(p.metadata!.name)),
      evict: (pod) => evicted.push(pod.metadata!.name),
      log,
      observe: async () => low,
      usage: async (pod) => (pod.metadata!.name === "a" ? 500n * Mi : 10n * Mi),
    });
    await m.pass();
    await m.pass();
    expect(evicted).toEqual(["a"]);
    stillActive.delete("a"); // a ended
    await m.pass();
    expect(evicted).toEqual(["a", "b"]);
  });

  it("evicts nothing without pressure, and keeps the condition for the transition period after it", async () => {
    const obs = { current: calm };
    const pods = [testPod("a")];
    const { m, evicted } = setUp(obs, {}, pods, 0);
    await m.pass();
    expect(m.pressure().MemoryPressure).toBeUndefined();
    obs.current = low;
    await m.pass();
    expect(m.pressure().MemoryPressure).toBeDefined();
    obs.current = calm;
    await new Promise((r) => setTimeout(r, 5));
    await m.pass();
    expect(m.pressure().MemoryPressure).toBeUndefined();
    expect(evicted.map((e) => e.name)).toEqual(["a"]);
  });

  it("frees image space above the high threshold before deciding pressure; no pod goes when that suffices", async () => {
    const obs = { current: { ...calm, "imagefs.available": { available: 10n * Mi, capacity: 100n * Mi } } as Observations };
    const pods = [testPod("a")];
    const { m, evicted, runtime } = setUp(obs, {}, pods);
    const id = await runtime.createContainer({
      podUid: "u", podName: "p", podNamespace: "default", containerName: "c", attempt: 0, image: "used:1",
      command: [], args: [], env: [], workingDir: "", mounts: [], resources: {}, netnsPath: "", hostname: "p", logPath: "",
    });
    await runtime.startContainer(id);
    // Removing the unused image brings the filesystem back to 50% used.
    const removeImage = runtime.removeImage.bind(runtime);
    runtime.removeImage = async (ref) => {
      await removeImage(ref);
      obs.current = { ...calm, "imagefs.available": { available: 50n * Mi, capacity: 100n * Mi } };
    };
    await m.pass();
    expect((await runtime.listImages()).map((i) => i.names[0])).toEqual(["used:1"]);
    expect(m.pressure().DiskPressure).toBeUndefined();
    expect(evicted).toEqual([]);
  });

  it("reports DiskPressure and evicts when image GC cannot free enough", async () => {
    const obs = { current: { ...calm, "imagefs.available": { available: 1n * Mi, capacity: 100n * Mi } } as Observations };
    const { m, evicted } = setUp(obs, { a: 5n * Mi }, [testPod("a")]);
    await m.pass();
    expect(m.pressure().DiskPressure).toBe("the node crossed the eviction threshold imagefs.available<15%");
    expect(evicted[0].message).toBe("The node was low on resource: ephemeral-storage. Threshold quantity: 15%, available: 1024Ki.");
  });
});
