// The node's real figures for the eviction signals, and each pod's usage for the ranking.
//
//   nodefs  = statfs of the agent's root dir (pod dirs, volumes, logs)
//   imagefs = statfs of containerd's root (images, snapshots)
//   memory.available = MemTotal − the working set of the root memory cgroup (usage − inactive
//                      file pages, as the kubelet computes it) on cgroup v1; MemAvailable of
//                      /proc/meminfo on cgroup v2 (whose root cgroup has no usage file)
//   a pod's memory = the working set of its containers' cgroups (found through /proc/<pid>/cgroup)
//   a pod's disk   = its dir under the root dir (volumes, /etc files) + its containers' log files
import { readFileSync } from "node:fs";
import { lstat, readdir, statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Observation, Observations } from "./thresholds.ts";

export const CGROUP_ROOT = "/sys/fs/cgroup";

/** Available and total bytes and inodes of the filesystem holding `path`. */
export async function filesystemFigures(path: string): Promise<{ bytes: Observation; inodes: Observation }> {
  const s = await statfs(path, { bigint: true });
  return {
    bytes: { available: s.bavail * s.bsize, capacity: s.blocks * s.bsize },
    inodes: { available: s.ffree, capacity: s.files },
  };
}

/** `Key: value kB` lines of /proc/meminfo → bytes. */
export function parseMeminfo(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+)(?: kB)?$/.exec(line.trim());
    if (m) out.set(m[1], BigInt(m[2]) * (line.includes("kB") ? 1024n : 1n));
  }
  return out;
}

/** `key value` lines of a memory.stat file. */
export function parseMemoryStat(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v && /^\d+$/.test(v)) out.set(k, BigInt(v));
  }
  return out;
}

/** usage − inactive file pages, never below 0 (the kubelet's working set). */
export function workingSet(usage: bigint, stat: Map<string, bigint>): bigint {
  const inactive = stat.get("total_inactive_file") ?? stat.get("inactive_file") ?? 0n;
  return usage > inactive ? usage - inactive : 0n;
}

export function isCgroupV2(root = CGROUP_ROOT): boolean {
  try {
    readFileSync(join(root, "cgroup.controllers"));
    return true;
  } catch {
    return false;
  }
}

/** memory.available of the node. */
export function memoryFigures(opts: { meminfo?: string; cgroupRoot?: string } = {}): Observation {
  const root = opts.cgroupRoot ?? CGROUP_ROOT;
  const info = parseMeminfo(opts.meminfo ?? readFileSync("/proc/meminfo", "utf8"));
  const total = info.get("MemTotal") ?? 0n;
  if (!isCgroupV2(root)) {
    try {
      const usage = BigInt(readFileSync(join(root, "memory", "memory.usage_in_bytes"), "utf8").trim());
      const ws = workingSet(usage, parseMemoryStat(readFileSync(join(root, "memory", "memory.stat"), "utf8")));
      return { available: total > ws ? total - ws : 0n, capacity: total };
    } catch {
      // No v1 memory controller mounted: fall through to meminfo.
    }
  }
  return { available: info.get("MemAvailable") ?? 0n, capacity: total };
}

/** The memory cgroup directory of a process: v1 "N:memory:/path" or v2 "0::/path". */
export function memoryCgroupDir(procCgroup: string, root = CGROUP_ROOT): string | undefined {
  let v2: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (controllers.split(",").includes("memory")) return join(root, "memory", path);
    if (controllers === "") v2 = join(root, path);
  }
  return v2;
}

/** The working set of the cgroup of process `pid` (0 when it is gone). */
export function processWorkingSet(pid: number, root = CGROUP_ROOT): bigint {
  try {
    const dir = memoryCgroupDir(readFileSync(`/proc/${pid}/cgroup`, "utf8"), root);
    if (!dir) return 0n;
    const v1 = dir.startsWith(join(root, "memory"));
    const usage = BigInt(readFileSync(join(dir, v1 ? "memory.usage_in_bytes" : "memory.current"), "utf8").trim());
    return workingSet(usage, parseMemoryStat(readFileSync(join(dir, "memory.stat"), "utf8")));
  } catch {
    return 0n;
  }
}

/** Bytes under a path (files counted once, symlinks not followed; at most `maxEntries` looked at). */
export async function diskUsage(path: string, maxEntries = 100_000): Promise<bigint> {
  let total = 0n;
  let seen = 0;
  const stack = [path];
  while (stack.length > 0 && seen < maxEntries) {
    const p = stack.pop()!;
    let st;
    try {
      st = await lstat(p, { bigint: true });
    } catch {
      continue;
    }
    seen++;
    if (st.isDirectory()) {
      const names = await readdir(p).catch(() => [] as string[]);
      for (const n of names) stack.push(join(p, n));
    } else total += st.blocks * 512n;
  }
  return total;
}

/** Every signal the node can observe. */
export async function observeNode(opts: { rootDir: string; imageFsDir?: string }): Promise<Observations> {
  const out: Observations = { "memory.available": memoryFigures() };
  const node = await filesystemFigures(opts.rootDir);
  out["nodefs.available"] = node.bytes;
  out["nodefs.inodesFree"] = node.inodes;
  if (opts.imageFsDir) {
    const image = await filesystemFigures(opts.imageFsDir).catch(() => undefined);
    if (image) {
      out["imagefs.available"] = image.bytes;
      out["imagefs.inodesFree"] = image.inodes;
    }
  }
  return out;
}
