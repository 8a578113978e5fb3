// Node pressure on real parts (cluster.ts: etcd, apiserver, containerd + runc, CNI): the agent's
// root dir is a small tmpfs this test mounts, a pod fills it through an emptyDir, and the agent
// reports DiskPressure from the filesystem's real figures and evicts that pod (Failed, Evicted,
// an Event) — and only that pod: its emptyDir goes with the eviction and the pressure ends. Image GC removes an unused image of
// the test's containerd and never the one a container uses.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { parseEvictionHard } from "../../internal/agent/eviction/thresholds.ts";
import { buildBusyboxImage } from "../harness/images.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { startCluster, waitFor, type Cluster } from "./cluster.ts";

let c: Cluster;
let tmpfs: string;
const evictions: string[] = [];
/** Passes of the eviction manager: whether a threshold was crossed. */
const passes: boolean[] = [];

beforeAll(async () => {
  tmpfs = makeTempDir("skiff-pressure-");
  // 48 MiB: the pods' files, logs and volumes; nodefs.available<10% is below 4.8 MiB free.
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", tmpfs]);
  c = await startCluster({
    agent: {
      rootDir: join(tmpfs, "root"),
      eviction: {
        // Only the disk signal of this test's filesystem: the machine's memory is not ours to judge.
        thresholds: parseEvictionHard("memory.available<0,imagefs.available<0%"),
        intervalMs: 500,
        onPass: (p) => {
          passes.push(p.crossed.length > 0);
          if (p.evicted) evictions.push(p.evicted.metadata!.name);
        },
      },
    },
  });
}, 120_000);

afterAll(async () => {
  await c?.stop();
  if (tmpfs) {
    execFileSync("umount", ["-l", tmpfs]);
    removeTempDir(tmpfs);
  }
}, 120_000);

const nodeCondition = async (type: string) => (await c.cp.client<Node>("Node").get("", c.nodeName)).status?.conditions.find((x) => x.type === type);

describe("disk pressure", () => {
  it("reports DiskPressure when the root dir's filesystem runs out and evicts the pod using it, not the one within its request", async () => {
    expect((await nodeCondition("DiskPressure"))?.status).toBe("False");
    await c.createPod("modest", {
      containers: [{ name: "app", command: ["sleep", "3600"], resources: { requests: { "ephemeral-storage": "1Mi" } } as any }],
    });
    await c.waitForPod("modest", "running", (p) => p.status?.phase === "Running");
    await c.createPod("filler", {
      volumes: [{ name: "data", emptyDir: {} }] as any,
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "dd if=/dev/zero of=/data/fill bs=1M count=46 2>/dev/null; sleep 3600"],
          volumeMounts: [{ name: "data", mountPath: "/data" }] as any,
        },
      ],
    });

    const evicted: Pod = await c.waitForPod("filler", "evicted", (p) => p.status?.phase === "Failed", 60_000);
    expect(evicted.status!.reason).toBe("Evicted");
    expect(evicted.status!.message).toMatch(/^The node was low on resource: ephemeral-storage\. Threshold quantity: 10%, available: \d+Ki\.$/);
    expect(evictions[0]).toBe("filler");
    // The Node status follows at the agent's next heartbeat.
    const pressure = await waitFor("DiskPressure=True", async () => {
      const cond = await nodeCondition("DiskPressure");
      return cond?.status === "True" ? cond : undefined;
    });
    expect(pressure?.reason).toBe("KubeletHasDiskPressure");
    expect(pressure?.message).toBe("the node crossed the eviction threshold nodefs.available<10%");

    // Its emptyDir went with it: the pressure ends and the pod within its request stays.
    const seen = passes.length;
    await waitFor("a pass without a crossed threshold", () => passes.slice(seen).includes(false), 30_000);
    expect(evictions).toEqual(["filler"]);
    expect((await c.getPod("modest"))?.status?.phase).toBe("Running");

    // Its container no longer runs, and the eviction is on record as an Event about the pod.
    const containers = await c.containersOf(evicted.metadata!.uid, "app");
    expect(containers.map((x) => x.state)).not.toContain("running");
    const events = await waitFor("the Evicted event", async () => {
      const list = (await c.cp.client<Event>("Event").list("default")).items;
      return list.filter((e) => e.reason === "Evicted" && e.involvedObject?.name === "filler").length > 0 ? list : undefined;
    });
    const ev = events.find((e) => e.reason === "Evicted" && e.involvedObject?.name === "filler")!;
    expect(ev.type).toBe("Warning");
    expect(ev.message).toBe(evicted.status!.message);
  }, 120_000);
});

describe("image garbage collection", () => {
  it("removes an unused image above the high threshold and keeps the image a container uses", async () => {
    // The evicted pod is deleted, as its owner would (its logs go with it).
    await c.pods.delete("default", "filler");
    await c.waitForGone("filler");
    const other = await buildBusyboxImage(join(c.dir, "other-image"), { name: "skiff.test/unused", tag: "v1", indexHtml: "unused image\n" });
    await c.runtime.importImage(other.tarPath);
    const names = async () => (await c.runtime.listImages()).flatMap((i) => i.names);
    expect((await names()).some((n) => n.includes("skiff.test/unused"))).toBe(true);
    await c.createPod("user", { containers: [{ name: "app", command: ["sleep", "3600"] }] });
    await c.waitForPod("user", "running", (p) => p.status?.phase === "Running");

    // 0 %/0 %: whatever the test containerd's filesystem holds is above the high threshold.
    await c.restartAgent({
      eviction: { thresholds: [], imageFsDir: c.ctrd.dir, imageGc: { highPercent: 0, lowPercent: 0 }, intervalMs: 500 },
    });
    await waitFor("the unused image removed", async () => !(await names()).some((n) => n.includes("skiff.test/unused")), 30_000);
    expect((await names()).some((n) => n.includes("skiff.test/busybox"))).toBe(true);
    expect((await c.getPod("user"))?.status?.phase).toBe("Running");
  }, 120_000);
});

describe("memory pressure", () => {
  it("evicts the pod with the largest working set first, measured in its containers' cgroups", async () => {
    await c.createPod("hog", {
      // /dev/shm is a tmpfs: its pages are charged to the container's memory cgroup, as anonymous memory.
      containers: [{ name: "app", command: ["sh", "-c", "dd if=/dev/zero of=/dev/shm/hold bs=1M count=40 2>/dev/null && echo allocated; sleep 3600"] }],
    });
    await c.createPod("light", { containers: [{ name: "app", command: ["sleep", "3600"] }] });
    await c.waitForPod("light", "running", (p) => p.status?.phase === "Running");
    await waitFor("hog holding its memory", async () => (await c.logs("hog")).includes("allocated"), 30_000);

    // A threshold above the machine's memory: crossed whatever the machine is doing.
    const totalKi = BigInt(/MemTotal:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"))![1]);
    const seen: string[] = [];
    await c.restartAgent({
      eviction: {
        thresholds: parseEvictionHard(`memory.available<${totalKi + 1024n * 1024n}Ki,nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%`),
        intervalMs: 60_000, // one pass at start: one eviction
        onPass: (p) => {
          if (p.evicted) seen.push(p.evicted.metadata!.name);
        },
      },
    });
    await waitFor("an eviction", () => seen.length > 0, 30_000);
    expect(seen).toEqual(["hog"]);
    const hog = await c.waitForPod("hog", "evicted", (p) => p.status?.phase === "Failed", 30_000);
    expect(hog.status!.reason).toBe("Evicted");
    expect(hog.status!.message).toMatch(/^The node was low on resource: memory\. Threshold quantity: \d+Ki, available: \d+Ki\.$/);
    expect((await c.getPod("light"))?.status?.phase).toBe("Running");
    await waitFor("MemoryPressure=True", async () => (await nodeCondition("MemoryPressure"))?.status === "True");
  }, 120_000);
});
