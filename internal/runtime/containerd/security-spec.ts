// A container's securityContext (ContainerSecurity, resolved by the agent) in OCI spec terms, as
// Kubernetes on containerd's CRI plugin applies it: user and groups, capabilities from the
// default set, no_new_privs, a read-only rootfs, seccomp, host PID/IPC namespaces, and for
// privileged containers every capability the runtime holds, the host's devices and no masked
// /proc paths.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CAPABILITIES } from "../../api/security-context.ts";
import { effectiveUser, type ContainerSecurity } from "../runtime.ts";
import { readLocalhostProfile, runtimeDefaultProfile } from "./seccomp.ts";

/** Capability names in bit order (the API's list follows capability.h), for /proc status masks. */
export const CAPABILITY_NAMES = [...CAPABILITIES].map((n) => `CAP_${n}`);

/** Capability names in a /proc/<pid>/status hex mask (CapEff, CapBnd, …). */
export function capabilitiesOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return CAPABILITY_NAMES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/**
 * "All capabilities" for a privileged container: the ones this process may hand on (its bounding
 * set). A sandboxed node may lack some, and runc cannot grant what it does not hold.
 */
export function runtimeCapabilities(status = "/proc/self/status"): string[] {
  const line = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync(status, "utf8"));
  return line ? capabilitiesOfMask(line[1]) : [...CAPABILITY_NAMES];
}

export interface OciDevice {
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

// Managed by runc or the default mounts, or per-process views.
const SKIP_DEVICES = new Set(["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx", "/dev/fd", "/dev/core"]);
const MAX_HOST_DEVICES = 4096;

/** The node's device nodes under /dev, for a privileged container (bounded). */
export function hostDevices(root = "/dev"): OciDevice[] {
  const out: OciDevice[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      if (SKIP_DEVICES.has(path) || out.length >= MAX_HOST_DEVICES) continue;
      let st;
      try {
        st = statSync(path, { bigint: true });
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        walk(path);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
        const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
        out.push({ path, type: st.isCharacterDevice() ? "c" : "b", major, minor, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid) });
      }
    }
  };
  walk(root);
  return out;
}

/** "net_admin" / "NET_ADMIN" / "CAP_NET_ADMIN" → "CAP_NET_ADMIN"; "ALL" stays. */
export function capabilityName(name: string): string {
  const upper = name.toUpperCase();
  return upper === "ALL" || upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

/** containerd's CRI order: add ALL, drop ALL, then single adds, then single drops. */
export function capabilitySet(defaults: string[], sec: ContainerSecurity, all: () => string[]): string[] {
  const add = sec.capabilities.add.map(capabilityName);
  const drop = sec.capabilities.drop.map(capabilityName);
  let caps = add.includes("ALL") ? all() : [...defaults];
  if (drop.includes("ALL")) caps = [];
  for (const c of add) if (c !== "ALL" && !caps.includes(c)) caps.push(c);
  return caps.filter((c) => !drop.includes(c));
}

/** What spec.ts built without a securityContext, to be adjusted here. */
interface Spec {
  process: Record<string, any>;
  root: { path: string; readonly?: boolean };
  mounts: { destination: string; type: string; source: string; options: string[] }[];
  linux: Record<string, any>;
}

export interface SecurityHost {
  /** Capabilities of a privileged container or `add: [ALL]` (default: runtimeCapabilities()). */
  capabilities?: () => string[];
  /** Device nodes of a privileged container (default: hostDevices()). */
  devices?: () => OciDevice[];
}

/** Applies `sec` to a spec built with the defaults; `imageUser` is the image config's USER. */
export function applySecurity(spec: Spec, sec: ContainerSecurity, imageUser: string, host: SecurityHost = {}): void {
  const all = host.capabilities ?? runtimeCapabilities;
  const { uid, gid } = effectiveUser(sec, imageUser);
  // A user name cannot be resolved without reading the rootfs: it runs as root (runAsNonRoot
  // refuses this case before we get here).
  spec.process.user = { uid: uid ?? 0, gid, ...(sec.supplementalGroups.length > 0 ? { additionalGids: [...new Set(sec.supplementalGroups)] } : {}) };
  spec.process.noNewPrivileges = !sec.privileged && !sec.allowPrivilegeEscalation;
  if (sec.readOnlyRootFilesystem) spec.root.readonly = true;

  const caps = sec.privileged ? all() : capabilitySet(spec.process.capabilities.bounding as string[], sec, all);
  spec.process.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps] };

  const shared = new Set([...(sec.hostPid ? ["pid"] : []), ...(sec.hostIpc ? ["ipc"] : [])]);
  spec.linux.namespaces = (spec.linux.namespaces as { type: string }[]).filter((n) => !shared.has(n.type));
  if (sec.hostIpc) {
    // The node's IPC namespace comes with the node's POSIX shared memory.
    const shm = spec.mounts.findIndex((m) => m.destination === "/dev/shm");
    if (shm >= 0 && spec.mounts[shm].type === "tmpfs") spec.mounts[shm] = { destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "rprivate"] };
  }

  if (sec.privileged) {
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
    for (const m of spec.mounts) {
      if (m.destination === "/sys" || m.destination === "/sys/fs/cgroup") m.options = m.options.filter((o) => o !== "ro");
    }
    spec.linux.devices = (host.devices ?? hostDevices)();
    spec.linux.resources.devices = [{ allow: true, access: "rwm" }];
    return; // privileged containers run without seccomp, as on Kubernetes
  }
  if (sec.seccomp.type === "RuntimeDefault") spec.linux.seccomp = runtimeDefaultProfile(caps);
  else if (sec.seccomp.type === "Localhost") spec.linux.seccomp = readLocalhostProfile(sec.seccomp.path);
}
