// emptyDir, hostPath and subPath on one real node (cluster.ts: etcd, apiserver, containerd + runc,
// CNI): emptyDir `medium: Memory` is a tmpfs of its sizeLimit; an emptyDir over its sizeLimit gets
// the pod evicted with a reason naming the volume; subPath and subPathExpr mount part of a volume,
// and a symlink leading out of the volume is refused; a hostPath of the wrong type is a
// FailedMount event that says what is wrong, and FileOrCreate makes the file.
import { create } from "@bufbuild/protobuf";
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Event } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { cstatus, startCluster, waitFor, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

const SLEEP = ["sleep", "3600"];

async function sh(pod: string, script: string, container = "app"): Promise<string> {
  const p = await c.pods.get("default", pod);
  const ctr = (await c.containersOf(p.metadata!.uid, container)).filter((x) => x.state === "running").at(-1);
  if (!ctr) throw new Error(`pod ${pod}: container ${container} is not running`);
  const r = await c.runtime.exec(ctr.id, ["sh", "-c", script], 30_000);
  if (r.exitCode !== 0) throw new Error(`pod ${pod}: ${script}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

const running = (name: string) => c.waitForPod(name, "Running", (p) => p.status?.phase === "Running", 60_000);

async function eventOf(pod: string, reason: string): Promise<Event> {
  return waitFor(`a ${reason} event of ${pod}`, async () =>
    (await c.cp.client<Event>("Event").list("default")).items.find((e) => e.involvedObject?.name === pod && e.reason === reason),
  );
}

describe("emptyDir", () => {
  it("mounts medium: Memory as a tmpfs the size of its sizeLimit", async () => {
    await c.createPod("memory", {
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "scratch", mountPath: "/scratch" }] as any }],
      volumes: [{ name: "scratch", emptyDir: { medium: "Memory", sizeLimit: "16Mi" } }] as any,
    });
    await running("memory");
    const line = (await sh("memory", "cat /proc/self/mountinfo")).split("\n").find((l) => l.split(" ")[4] === "/scratch")!;
    expect(line.split(" - ")[1].split(" ")[0]).toBe("tmpfs");
    // statfs: total blocks × block size = 16 MiB.
    expect(await sh("memory", "stat -f -c '%b %S' /scratch")).toMatch(/^\d+ \d+\n$/);
    const [blocks, size] = (await sh("memory", "stat -f -c '%b %S' /scratch")).trim().split(" ").map(Number);
    expect(blocks * size).toBe(16 * 1024 * 1024);
    // Writable, and more than the size does not fit.
    expect(await sh("memory", "echo hi > /scratch/f && cat /scratch/f")).toBe("hi\n");
    await expect(sh("memory", "dd if=/dev/zero of=/scratch/big bs=1M count=20")).rejects.toThrow(/No space left/);
  }, 120_000);

  it("evicts a pod whose emptyDir holds more than its sizeLimit, with a reason naming the volume", async () => {
    await c.createPod("filler", {
      containers: [{ name: "app", command: ["sh", "-c", "dd if=/dev/zero of=/cache/blob bs=1M count=3 && sleep 3600"], volumeMounts: [{ name: "cache", mountPath: "/cache" }] as any }],
      volumes: [{ name: "cache", emptyDir: { sizeLimit: "1Mi" } }] as any,
    });
    const p = await c.waitForPod("filler", "evicted", (p) => p.status?.phase === "Failed", 90_000);
    expect(p.status!.reason).toBe("Evicted");
    expect(p.status!.message).toBe('Usage of EmptyDir volume "cache" exceeds the limit "1Mi".');
    const event = await eventOf("filler", "Evicted");
    expect(event.message).toContain('EmptyDir volume "cache"');
    // Its containers are stopped.
    const ctrs = await c.containersOf(p.metadata!.uid);
    expect(ctrs.filter((x) => x.state === "running")).toEqual([]);
  }, 120_000);
});

describe("subPath", () => {
  it("mounts one ConfigMap key as a file and a subPathExpr directory named from the container's env", async () => {
    await c.cp.client<ConfigMap>("ConfigMap").create(create(ConfigMapSchema, { metadata: { name: "sub", namespace: "default" }, data: { "app.conf": "mode=sub\n", other: "o" } }));
    await c.createPod("subpath", {
      containers: [
        {
          name: "app",
          command: ["sh", "-c", "echo written > /per-pod/out; sleep 3600"],
          env: [{ name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }] as any,
          volumeMounts: [
            { name: "cfg", mountPath: "/etc/app.conf", subPath: "app.conf" },
            { name: "data", mountPath: "/per-pod", subPathExpr: "pods/$(POD_NAME)" },
          ] as any,
        },
      ],
      volumes: [{ name: "cfg", configMap: { name: "sub" } }, { name: "data", emptyDir: {} }] as any,
    });
    const p = await running("subpath");
    expect(await sh("subpath", "cat /etc/app.conf")).toBe("mode=sub\n");
    // Only that file: the directory /etc is the image's own.
    expect(await sh("subpath", "ls /etc | grep -c other || true")).toBe("0\n");
    await waitFor("the file in the emptyDir's pods/subpath", async () => {
      try {
        return statSync(join(c.rootDir, "pods", p.metadata!.uid, "volumes", "data", "pods", "subpath", "out")).isFile();
      } catch {
        return false;
      }
    }, 30_000);
  }, 120_000);

  it("refuses a subPath that a symlink in the volume leads out of it (CreateContainerConfigError)", async () => {
    await c.createPod("escape", {
      // The init container leaves a symlink to / in the emptyDir; the app container mounts it by subPath.
      initContainers: [{ name: "plant", command: ["ln", "-s", "/", "/data/root"], volumeMounts: [{ name: "data", mountPath: "/data" }] as any }],
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "data", mountPath: "/host", subPath: "root" }] as any }],
      volumes: [{ name: "data", emptyDir: {} }] as any,
    });
    const p = await c.waitForPod("escape", "refused", (p) => cstatus(p)?.state?.waiting?.reason === "CreateContainerConfigError", 60_000);
    expect(cstatus(p)!.state!.waiting!.message).toContain('subPath "root" leads outside the volume');
  }, 120_000);
});

describe("hostPath", () => {
  it("says what is wrong when the path is not of the type asked for, and makes a FileOrCreate file", async () => {
    const dir = join(c.dir, "host-data");
    mkdirSync(dir, { recursive: true });
    await c.createPod("wrong-type", {
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "f", mountPath: "/f" }, { name: "missing", mountPath: "/m" }] as any }],
      volumes: [
        { name: "f", hostPath: { path: dir, type: "File" } },
        { name: "missing", hostPath: { path: join(dir, "nope"), type: "Directory" } },
      ] as any,
    });
    const event = await eventOf("wrong-type", "FailedMount");
    expect(event.type).toBe("Warning");
    expect(event.message).toContain(`MountVolume.SetUp failed for volume "f" : hostPath type check failed: ${dir} is not a file`);
    expect(event.message).toContain(`volume "missing" : hostPath type check failed: ${join(dir, "nope")} does not exist`);
    const p = await c.getPod("wrong-type");
    expect(cstatus(p)?.state?.waiting?.reason).toBe("ContainerCreating");

    await c.createPod("creates", {
      containers: [{ name: "app", command: SLEEP, volumeMounts: [{ name: "log", mountPath: "/var/log/app.log" }] as any }],
      volumes: [{ name: "log", hostPath: { path: join(dir, "app.log"), type: "FileOrCreate" } }] as any,
    });
    await running("creates");
    await sh("creates", "echo from-the-pod >> /var/log/app.log");
    expect(statSync(join(dir, "app.log")).isFile()).toBe(true);
  }, 120_000);
});
