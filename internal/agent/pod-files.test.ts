// The pod's /etc files as the node writes them, on a memory file system (synchronous calls) and
// on the temp dir's file system (the thread pool): the same files, contents and modes either way.
import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { podDir, removePodDir, writeEtcFiles } from "./pod-files.ts";
import { prepareInstanceFiles } from "./termination-message.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const dns = { nameserver: "10.96.0.10", domain: "cluster.local" };
const pod = (aliases: string[] = []): Pod =>
  create(PodSchema, {
    metadata: { name: "web", namespace: "shop", uid: "uid-1" },
    spec: { containers: [{ name: "app", image: "x" }], hostAliases: aliases.length ? [{ ip: "192.0.2.9", hostnames: aliases }] : [] },
  });

describe.each([
  ["a memory file system", "/dev/shm"],
  ["the temp dir", tmpdir()],
])("a pod's /etc files on %s", (_where, base) => {
  function rootDir(): string {
    const root = mkdtempSync(join(base, "skiff-pod-files-"));
    dirs.push(root);
    writeFileSync(join(root, "resolv.conf"), "nameserver 192.0.2.53\n");
    return root;
  }

  it("are written with their contents and mode 0644, and mounted over /etc", async () => {
    const root = rootDir();
    const mounts = await writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    expect(mounts.map((m) => m.containerPath)).toEqual(["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]);
    const dir = podDir(root, "uid-1");
    expect(readFileSync(join(dir, "etc-hostname"), "utf8")).toBe("web\n");
    expect(readFileSync(join(dir, "etc-hosts"), "utf8")).toContain("10.244.0.7\tweb\n");
    expect(readFileSync(join(dir, "etc-resolv.conf"), "utf8")).toBe("nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n");
    for (const m of mounts) expect(statSync(m.hostPath).mode & 0o777).toBe(0o644 & ~process.umask());
    await removePodDir(root, "uid-1");
  });

  it("are not written again by a sync that changes nothing, and rewritten when the pod changes", async () => {
    const root = rootDir();
    const hosts = join(podDir(root, "uid-1"), "etc-hosts");
    await writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(hosts, past, past);
    await writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    expect(statSync(hosts).mtimeMs).toBe(past.getTime());
    await writeEtcFiles(root, pod(["db.internal"]), "10.244.0.7", join(root, "resolv.conf"), dns);
    expect(readFileSync(hosts, "utf8")).toContain("192.0.2.9\tdb.internal\n");
    await removePodDir(root, "uid-1");
  });

  it("a new agent finds the files an earlier one wrote: the same left alone, a changed one rewritten, a missing one written", async () => {
    const root = rootDir();
    const dir = podDir(root, "uid-1");
    await writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(join(dir, "etc-hosts"), past, past);
    writeFileSync(join(dir, "etc-hostname"), "old-name\n");
    rmSync(join(dir, "etc-resolv.conf"));
    // A new agent process: nothing remembered of what the first one wrote.
    vi.resetModules();
    const fresh = await import("./pod-files.ts");
    await fresh.writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    expect(statSync(join(dir, "etc-hosts")).mtimeMs).toBe(past.getTime());
    expect(readFileSync(join(dir, "etc-hostname"), "utf8")).toBe("web\n");
    expect(readFileSync(join(dir, "etc-resolv.conf"), "utf8")).toContain("nameserver 10.96.0.10\n");
    await fresh.removePodDir(root, "uid-1");
  });

  it("are written into a pod directory that something else made first (a volume)", async () => {
    const root = rootDir();
    mkdirSync(join(podDir(root, "uid-1"), "volumes", "cache"), { recursive: true });
    await writeEtcFiles(root, pod(), "10.244.0.7", join(root, "resolv.conf"), dns);
    expect(readFileSync(join(podDir(root, "uid-1"), "etc-hostname"), "utf8")).toBe("web\n");
    expect(statSync(join(podDir(root, "uid-1"), "etc-hosts")).mode & 0o777).toBe(0o644 & ~process.umask());
    await removePodDir(root, "uid-1");
  });

  it("a container instance's termination-log file is writable by anyone under a restrictive umask", async () => {
    const root = rootDir();
    const term = join(podDir(root, "uid-1"), "termination", "app", "0");
    const old = process.umask(0o077);
    try {
      await prepareInstanceFiles(join(podDir(root, "uid-1"), "logs", "app", "0.log"), term, base === "/dev/shm");
    } finally {
      process.umask(old);
    }
    expect(statSync(term).mode & 0o777).toBe(0o666);
    expect(statSync(join(podDir(root, "uid-1"), "logs", "app")).isDirectory()).toBe(true);
  });
});
