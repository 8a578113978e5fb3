// Builds the OCI runtime spec (runtime-spec 1.0.2) containerd 1.6 hands to runc for one container.
//
// The defaults follow what containerd's Go client and its CRI plugin produce for a plain,
// unprivileged Kubernetes container: the image's process settings overridden by the pod's
// (Kubernetes' command/args rules), the usual pseudo-filesystems, masked and read-only /proc
// paths, a fixed capability set, a deny-all device cgroup with the usual character devices
// allowed, and cgroup limits from the container's resources.
//
// A securityContext (cfg.security) is applied on top by security-spec.ts.
//
// Pure: no I/O except swapAccountingAvailable(), which callers use to decide opts.limitSwap, and
// what security-spec.ts reads for privileged containers and Localhost seccomp profiles.

import { existsSync } from "node:fs";
import { verifyRunAsNonRoot, type ContainerConfig, type Mount } from "../runtime.ts";
import { applySecurity, type SecurityHost } from "./security-spec.ts";

/** The process-related part of an OCI image config (`config` in the image config JSON). */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  /** "NAME=value" entries. */
  env: string[];
  workingDir: string;
  /** "uid", "uid:gid", "name" or "name:group" (names are not resolved: they run as 0). */
  user: string;
}

export interface BuildSpecOptions {
  /** Parent of every container's cgroup, e.g. "/skiff". */
  cgroupsParent: string;
  containerId: string;
  /** linux.resources.pids.limit; omitted (unlimited) when unset or <= 0. */
  pidsLimit?: number;
  /**
   * Set memory.swap = memory.limit so a memory-limited container cannot swap. Needs swap
   * accounting in the kernel (cgroup v1: memory.memsw.*), else runc fails; default true.
   */
  limitSwap?: boolean;
  /** What privileged containers get from the node (tests pass their own). */
  securityHost?: SecurityHost;
}

export const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The capability set containerd (and Docker) give an unprivileged container. */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
];

const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

function defaultMounts(): OciMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
  ];
}

/** Character devices every container may use: [major, minor (undefined = any)], as runc allows by default. */
const ALLOWED_CHAR_DEVICES: [number, number | undefined][] = [
  [1, 3], // /dev/null
  [1, 5], // /dev/zero
  [1, 7], // /dev/full
  [1, 8], // /dev/random
  [1, 9], // /dev/urandom
  [5, 0], // /dev/tty
  [5, 2], // /dev/ptmx
  [136, undefined], // /dev/pts/*
];

/**
 * Kubernetes' rules: `command` replaces the image ENTRYPOINT and drops its CMD; `args` replaces
 * CMD. Neither set → ENTRYPOINT + CMD.
 */
export function resolveArgs(command: string[], args: string[], image: Pick<ImageConfig, "entrypoint" | "cmd">): string[] {
  if (command.length > 0) return [...command, ...args];
  const entrypoint = image.entrypoint ?? [];
  return [...entrypoint, ...(args.length > 0 ? args : (image.cmd ?? []))];
}

/** Image env, then `extra` entries replacing same-named ones in place; PATH added if none. */
export function mergeEnv(imageEnv: string[], extra: { name: string; value: string }[]): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  const set = (name: string, entry: string) => {
    if (!values.has(name)) order.push(name);
    values.set(name, entry);
  };
  for (const entry of imageEnv ?? []) {
    const eq = entry.indexOf("=");
    set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? `${entry}=` : entry);
  }
  for (const { name, value } of extra) set(name, `${name}=${value}`);
  if (!values.has("PATH")) {
    order.unshift("PATH");
    values.set("PATH", DEFAULT_PATH);
  }
  return order.map((name) => values.get(name)!);
}

const NUMERIC = /^\d+$/;

/** uid/gid from an image's USER when numeric; a name (unresolvable without the rootfs) → 0. */
export function parseUser(user: string): { uid: number; gid: number } {
  const [u = "", g = ""] = (user ?? "").split(":", 2);
  const uid = NUMERIC.test(u) ? Number(u) : 0;
  const gid = NUMERIC.test(g) ? Number(g) : 0;
  return { uid, gid };
}

function bindMount(m: Mount): OciMount {
  const options = ["rbind", "rprivate"];
  if (m.readOnly) options.push("ro");
  return { destination: m.containerPath, type: "bind", source: m.hostPath, options };
}

function resources(cfg: ContainerConfig, opts: BuildSpecOptions): Record<string, unknown> {
  const devices: Record<string, unknown>[] = [{ allow: false, access: "rwm" }];
  for (const [major, minor] of ALLOWED_CHAR_DEVICES) {
    // An omitted minor is the OCI wildcard.
    devices.push(minor === undefined ? { allow: true, type: "c", major, access: "rwm" } : { allow: true, type: "c", major, minor, access: "rwm" });
  }
  const out: Record<string, unknown> = { devices };

  const r = cfg.resources ?? {};
  const cpu: Record<string, number> = {};
  if (r.cpuShares && r.cpuShares > 0) cpu.shares = r.cpuShares;
  if (r.cpuQuotaUs && r.cpuQuotaUs > 0) {
    cpu.quota = r.cpuQuotaUs;
    cpu.period = r.cpuPeriodUs && r.cpuPeriodUs > 0 ? r.cpuPeriodUs : 100_000;
  } else if (r.cpuPeriodUs && r.cpuPeriodUs > 0) {
    cpu.period = r.cpuPeriodUs;
  }
  if (Object.keys(cpu).length > 0) out.cpu = cpu;

  if (r.memoryLimitBytes && r.memoryLimitBytes > 0) {
    const memory: Record<string, number> = { limit: r.memoryLimitBytes };
    if (opts.limitSwap ?? true) memory.swap = r.memoryLimitBytes;
    out.memory = memory;
  }
  if (opts.pidsLimit && opts.pidsLimit > 0) out.pids = { limit: opts.pidsLimit };
  return out;
}

export function cgroupsPathFor(parent: string, containerId: string): string {
  const base = parent.replace(/\/+$/, "");
  return `${base.startsWith("/") || base === "" ? base : `/${base}`}/${containerId}`;
}

export function buildOciSpec(cfg: ContainerConfig, image: ImageConfig, opts: BuildSpecOptions): object {
  const args = resolveArgs(cfg.command ?? [], cfg.args ?? [], image);
  if (args.length === 0) {
    throw new Error(`container ${cfg.containerName}: no command: the image has no entrypoint or cmd and the pod sets none`);
  }
  const env = mergeEnv(image.env ?? [], [
    ...(cfg.hostname ? [{ name: "HOSTNAME", value: cfg.hostname }] : []),
    ...(cfg.env ?? []),
  ]);

  // Pod mounts win over a default at the same destination (e.g. a bigger /dev/shm).
  const podMounts = (cfg.mounts ?? []).map(bindMount);
  const taken = new Set(podMounts.map((m) => m.destination));
  const mounts = [...defaultMounts().filter((m) => !taken.has(m.destination)), ...podMounts];

  const namespaces: { type: string; path?: string }[] = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }];
  if (cfg.netnsPath) namespaces.push({ type: "network", path: cfg.netnsPath });

  verifyRunAsNonRoot(cfg.security, image.user ?? "");
  const spec = {
    ociVersion: "1.0.2",
    process: {
      terminal: cfg.tty ?? false,
      user: parseUser(image.user),
      args,
      env,
      cwd: cfg.workingDir || image.workingDir || "/",
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs" },
    hostname: cfg.hostname || undefined,
    mounts,
    linux: {
      resources: resources(cfg, opts),
      cgroupsPath: cgroupsPathFor(opts.cgroupsParent, opts.containerId),
      namespaces,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (cfg.security) applySecurity(spec as Parameters<typeof applySecurity>[0], cfg.security, image.user ?? "", opts.securityHost);
  return spec;
}

/**
 * Whether opts.limitSwap is safe. cgroup v1 needs memory.memsw.* (swap accounting); on cgroup v2
 * runc turns swap == limit into memory.swap.max=0 and skips it quietly when swap is not
 * accounted, so v2 is always safe.
 */
export function swapAccountingAvailable(cgroupRoot = "/sys/fs/cgroup"): boolean {
  return existsSync(`${cgroupRoot}/cgroup.controllers`) || existsSync(`${cgroupRoot}/memory/memory.memsw.limit_in_bytes`);
}
