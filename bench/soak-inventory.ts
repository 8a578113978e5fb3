// What one bench node holds, counted object by object, for the soak's before/after comparison:
// every kind of thing a pod's life creates on the machine and its teardown must remove, scoped to
// this run (its CNI network/bridge name, its containerd dir and namespace, its agent root), plus
// open file descriptors and RSS of every Skiff-side process. Linux only, root.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { listNetns } from "../internal/network/netns.ts";
import { readProcs } from "./lib/proc.ts";

export interface InventoryScope {
  /** The run's CNI network = bridge name = netns prefix. */
  networkName: string;
  /** host-local's data dir and the result cache live under it. */
  cniStateDir: string;
  ctrdAddress: string;
  ctrdDir: string;
  ctrdNamespace: string;
  /** The agent's --root-dir (pod dirs with their logs). */
  agentRoot: string;
  /** Processes whose fds and RSS are followed, by name. */
  processes: Record<string, number>;
}

/** Object counts by kind ("netns", "veth", …), and fds/RSS by process. */
export interface Inventory {
  objects: Record<string, number>;
  fds: Record<string, number>;
  rssKiB: Record<string, number>;
}

function sh(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 30_000 });
  } catch {
    return "";
  }
}

const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");

/** Regular files under dir, recursively (0 when it does not exist). */
function countFiles(dir: string, keep: (name: string) => boolean = () => true): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countFiles(join(dir, e.name), keep);
    else if (keep(e.name)) n++;
  }
  return n;
}

/** Directories under dir, recursively (cgroups are directories). */
function countDirs(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) n += 1 + countDirs(join(dir, e.name));
  return n;
}

/** Rows of a `ctr … ls` listing (without its header line); NaN when ctr failed. */
function ctr(scope: InventoryScope, ...args: string[]): number {
  const out = sh("ctr", ["-a", scope.ctrdAddress, "-n", scope.ctrdNamespace, ...args]);
  return out === "" ? NaN : lines(out).length - 1;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/**
 * Counts of the whole machine, shown for context but not taken for leaks: other work on the
 * machine (tests of others, their pods) changes them during a run.
 */
export const MACHINE_WIDE = new Set(["veth (all, host)"]);

export function takeInventory(scope: InventoryScope): Inventory {
  const ipFile = /^[0-9a-f.:]+$/i; // host-local keeps one file per allocated IP (plus lock, last_reserved_ip.N)
  const cgroupV2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
  const mountinfo = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  const procs = readProcs();
  const objects: Record<string, number> = {
    "network namespaces": listNetns().filter((n) => n.startsWith(`${scope.networkName}-`)).length,
    "veth on the bridge": lines(sh("ip", ["-o", "link", "show", "master", scope.networkName, "type", "veth"])).length,
    "veth (all, host)": lines(sh("ip", ["-o", "link", "show", "type", "veth"])).length,
    "CNI IP allocations": countFiles(join(scope.cniStateDir, "networks", scope.networkName), (n) => ipFile.test(n) && n !== "lock"),
    "CNI cached results": countFiles(join(scope.cniStateDir, "results")),
    "NAT rules of the run": lines(sh("iptables-save", ["-t", "nat"])).filter((l) => l.includes(scope.networkName)).length,
    cgroups: cgroupV2
      ? countDirs(join("/sys/fs/cgroup", scope.ctrdNamespace))
      : countDirs(join("/sys/fs/cgroup/memory", scope.ctrdNamespace)),
    "mounts (containerd dir, netns, agent root)": mountinfo.filter(
      (l) => l.includes(scope.ctrdDir) || l.includes(`/netns/${scope.networkName}-`) || l.includes(scope.agentRoot),
    ).length,
    "containerd containers": ctr(scope, "containers", "ls"),
    "containerd tasks": ctr(scope, "tasks", "ls"),
    "containerd snapshots": ctr(scope, "snapshots", "ls"),
    "containerd leases": ctr(scope, "leases", "ls"),
    "runc state dirs": existsSync(join("/run/containerd/runc", scope.ctrdNamespace)) ? readdirSync(join("/run/containerd/runc", scope.ctrdNamespace)).length : 0,
    "shim processes": [...procs.values()].filter((p) => p.cmdline.includes("containerd-shim") && p.cmdline.includes(scope.ctrdDir)).length,
    "pod dirs (agent root)": existsSync(join(scope.agentRoot, "pods")) ? readdirSync(join(scope.agentRoot, "pods")).length : 0,
    "log files": countFiles(join(scope.agentRoot, "pods"), (n) => n.endsWith(".log")),
  };
  const fds: Record<string, number> = {};
  const rss: Record<string, number> = {};
  for (const [name, pid] of Object.entries(scope.processes)) {
    try {
      fds[name] = readdirSync(`/proc/${pid}/fd`).length;
      rss[name] = rssKiB(pid);
    } catch {
      fds[name] = NaN;
      rss[name] = NaN;
    }
  }
  return { objects, fds, rssKiB: rss };
}

/** The pid of the containerd serving from dir (its command line names the dir's config). */
export function containerdPid(dir: string): number | undefined {
  return serverPid("containerd", dir);
}

/** The pid of the server `comm` whose command line mentions `needle` (not the harness's sh wrapper). */
export function serverPid(comm: string, needle: string): number | undefined {
  for (const p of readProcs().values()) if (p.comm === comm && p.cmdline.includes(needle)) return p.pid;
  return undefined;
}

