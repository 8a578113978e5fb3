// Starts a real containerd (Debian `containerd` + `runc`, as root) for a test: a fresh temp dir
// holding its root, state, socket and a generated config (CRI and the snapshotters that cannot
// work here disabled; overlayfs is the one used). Stops it and cleans up on stop(). It runs
// under startGuardedProcess (process.ts), so a crashed test run does not leave containerd behind.
//
// containerd's shims and containers outlive containerd itself, and a running container holds an
// overlay mount under the temp dir. So cleaning a dir (on stop, and for the dirs of crashed
// earlier runs, found by their owner pid) goes: `runc delete --force` every container the dir's
// state knows (kills it, removes its cgroup) → kill the dir's shims, remove their sockets →
// unmount everything under the dir → remove the namespace's parent cgroups and runc dir → rm -rf.
// Never rm -rf through a mount.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createContainerdClient } from "../../internal/runtime/containerd/client.ts";
import { startGuardedProcess } from "./process.ts";

const PREFIX = "skiff-containerd-";
const OWNER_FILE = "owner.pid";
const NAMESPACE_FILE = "namespace";
const RUNC_ROOT = "/run/containerd/runc";
const CGROUP_ROOT = "/sys/fs/cgroup";
const TASK_STATE = "io.containerd.runtime.v2.task";
const SHIM_SOCKET_DIR = "/run/containerd/s";
const SOCKET = "c.sock";

export interface ContainerdServer {
  /** The gRPC socket path. */
  address: string;
  /** A containerd namespace unique to this server, cleaned up (cgroups, runc state) on stop. */
  namespace: string;
  dir: string;
  /** Kills containerd, every container and shim it started; unmounts and removes the dir. Safe twice. */
  stop(): Promise<void>;
  /**
   * What a machine reboot does to this containerd, and to nothing else on the machine: containerd
   * stops, every shim and container process of its namespaces is killed (SIGKILL), what a real
   * machine keeps on tmpfs is gone (task bundles and their rootfs mounts, runc state, shim
   * sockets, the containers' cgroups), then containerd starts again on the same root: images,
   * snapshots and container records survive, as they do on disk. `stateOnDisk`: containerd's
   * state dir survives too (as with `skiff up`'s own containerd, whose state is under its
   * --state-dir), so containerd finds the bundles of dead shims at start and cleans them up.
   */
  reboot(opts?: { stateOnDisk?: boolean }): Promise<void>;
  /** kill -9 of containerd alone: shims and containers keep running, the dir stays (`restart()` ends it). */
  kill(): Promise<void>;
  /** Starts containerd again after kill(), same dir and socket; resolves once it serves. */
  restart(): Promise<void>;
}

export interface StartContainerdOptions {
  /** containerd binary; default `containerd` from PATH (or $SKIFF_CONTAINERD_BIN). */
  bin?: string;
  timeoutMs?: number;
}

function config(dir: string, address: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "${address}"
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[ttrpc]
  address = "${address}.ttrpc"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => unescape(line.split(" ")[4]))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Pids whose command line mentions `needle` (the dir's shims: `-address <dir>/…`). */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function removeCgroups(namespace: string): void {
  let controllers: string[];
  try {
    controllers = readdirSync(CGROUP_ROOT);
  } catch {
    return;
  }
  const rmTree = (path: string) => {
    let children: string[];
    try {
      children = readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const c of children) rmTree(join(path, c));
    try {
      rmdirSync(path);
    } catch {
      // busy (a process still in it) or gone
    }
  };
  for (const c of [...controllers, ""]) rmTree(join(CGROUP_ROOT, c, namespace));
}

/** Where containerd 1.6 puts a shim's socket: /run/containerd/s/<sha256(address/ns/id)>. */
function shimSocket(address: string, namespace: string, id: string): string {
  return join(SHIM_SOCKET_DIR, createHash("sha256").update(join(address, namespace, id)).digest("hex"));
}

/** Kills what a containerd dir left running and removes it; see the header. */
export function cleanContainerdDir(dir: string): void {
  const state = join(dir, "state", TASK_STATE);
  const shimSockets: string[] = [];
  const namespaces = new Set<string>();
  try {
    namespaces.add(readFileSync(join(dir, NAMESPACE_FILE), "utf8").trim());
  } catch {
    // not written yet
  }
  if (existsSync(state)) {
    for (const ns of readdirSync(state)) {
      namespaces.add(ns);
      for (const id of readdirSync(join(state, ns))) {
        spawnSync("runc", ["--root", join(RUNC_ROOT, ns), "delete", "--force", id], { stdio: "ignore", timeout: 10_000 });
        shimSockets.push(shimSocket(join(dir, SOCKET), ns, id));
      }
    }
  }
  for (const pid of processesMentioning(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  // A killed shim leaves its socket behind.
  for (const sock of shimSockets) rmSync(sock, { force: true });
  for (const m of mountsUnder(dir)) {
    if (spawnSync("umount", [m], { stdio: "ignore" }).status !== 0) spawnSync("umount", ["-l", m], { stdio: "ignore" });
  }
  for (const ns of namespaces) {
    if (!ns) continue;
    removeCgroups(ns);
    try {
      rmdirSync(join(RUNC_ROOT, ns));
    } catch {
      // not empty (another containerd uses this namespace) or gone
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`cannot clean ${dir}: still mounted: ${left.join(", ")}`);
  rmSync(dir, { recursive: true, force: true });
}

/** Pids of every process in the cgroups of a containerd namespace (every controller; v1 and v2). */
function cgroupProcesses(namespace: string): number[] {
  const pids = new Set<number>();
  const walk = (path: string) => {
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(path, e.name));
      else if (e.name === "cgroup.procs") {
        for (const line of readFileSync(join(path, e.name), "utf8").split("\n")) if (/^\d+$/.test(line)) pids.add(Number(line));
      }
    }
  };
  let controllers: string[] = [];
  try {
    controllers = readdirSync(CGROUP_ROOT);
  } catch {
    // no cgroup fs
  }
  for (const c of [...controllers, ""]) walk(join(CGROUP_ROOT, c, namespace));
  return [...pids];
}

/** The tmpfs half of a reboot for a stopped containerd (see ContainerdServer.reboot). */
async function powerCycle(dir: string, stateOnDisk: boolean): Promise<void> {
  const state = join(dir, "state");
  const tasks = join(state, TASK_STATE);
  const namespaces = new Set<string>([readFileSync(join(dir, NAMESPACE_FILE), "utf8").trim()]);
  const shimSockets: string[] = [];
  if (existsSync(tasks)) {
    for (const ns of readdirSync(tasks)) {
      namespaces.add(ns);
      for (const id of readdirSync(join(tasks, ns))) shimSockets.push(shimSocket(join(dir, SOCKET), ns, id));
    }
  }
  const victims = [...processesMentioning(dir), ...[...namespaces].flatMap(cgroupProcesses)];
  for (const pid of victims) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const deadline = Date.now() + 10_000; victims.some((pid) => existsSync(`/proc/${pid}`) && !isZombie(pid)); ) {
    if (Date.now() > deadline) throw new Error(`reboot: processes still alive after SIGKILL: ${victims.filter((p) => existsSync(`/proc/${p}`)).join(" ")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const sock of shimSockets) rmSync(sock, { force: true });
  for (const m of mountsUnder(state)) {
    if (spawnSync("umount", [m], { stdio: "ignore" }).status !== 0) spawnSync("umount", ["-l", m], { stdio: "ignore" });
  }
  if (!stateOnDisk) rmSync(state, { recursive: true, force: true });
  for (const ns of namespaces) {
    rmSync(join(RUNC_ROOT, ns), { recursive: true, force: true });
    removeCgroups(ns);
  }
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/** Cleans the dirs of earlier runs whose owning process is gone. */
export function sweepStaleContainerdDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), "utf8"));
    } catch {
      continue;
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      try {
        cleanContainerdDir(dir);
      } catch (err) {
        console.warn(`skiff test harness: ${(err as Error).message}`);
      }
    }
  }
}

export async function startContainerd(opts: StartContainerdOptions = {}): Promise<ContainerdServer> {
  const bin = opts.bin ?? process.env.SKIFF_CONTAINERD_BIN ?? "containerd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  sweepStaleContainerdDirs();
  const dir = mkdtempSync(join(tmpdir(), PREFIX));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  const namespace = `skiff-test-${process.pid}-${Date.now().toString(36)}`;
  writeFileSync(join(dir, NAMESPACE_FILE), namespace);
  const address = join(dir, SOCKET);
  writeFileSync(join(dir, "config.toml"), config(dir, address));

  // The dir is kept while a reboot is half done (it is the machine's disk) and while containerd is
  // killed on purpose (the shims stay); any other end cleans everything up.
  let rebooting = false;
  let outage = false;
  // Ready when the Version RPC answers.
  const launch = async () => {
    const client = createContainerdClient({ address, namespace });
    try {
      return await startGuardedProcess({
        command: bin,
        args: ["--config", join(dir, "config.toml")],
        name: "containerd",
        timeoutMs,
        exitedBefore: "serving",
        notReady: `not serving on ${address}`,
        ready: async () => {
          if (!existsSync(address)) return false;
          await client.version.version({}, { timeoutMs: 1000 });
          return true;
        },
        cleanup: () => {
          if (!rebooting && !outage) cleanContainerdDir(dir);
        },
      });
    } finally {
      client.close();
    }
  };
  let current = await launch();
  return {
    address,
    namespace,
    dir,
    async stop() {
      outage = false;
      await current.stop();
      if (existsSync(dir)) cleanContainerdDir(dir); // stopped while killed: its cleanup was skipped
    },
    async reboot(opts = {}) {
      rebooting = true;
      try {
        await current.stop();
        await powerCycle(dir, opts.stateOnDisk ?? false);
      } finally {
        rebooting = false;
      }
      current = await launch();
    },
    async kill() {
      outage = true;
      if (current.child.pid !== undefined) process.kill(-current.child.pid, "SIGKILL");
      await current.stop(); // reaps it; cleanup keeps the dir
    },
    async restart() {
      current = await launch();
      outage = false;
    },
  };
}
