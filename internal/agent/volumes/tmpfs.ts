// Memory-backed directories: tmpfs mounted in the agent's (the host's) mount namespace, so that
// secrets never touch the node's disk and emptyDir `medium: Memory` is RAM. The pages a container
// writes there are charged to its memory cgroup, so they count in the pod's memory like the
// kubelet's. Mounts are found again from /proc/self/mountinfo (after an agent restart too), and
// every mount under a pod's directory is taken down before the directory is removed.
import { mkdir, readFile } from "node:fs/promises";
import { runChecked } from "../../network/exec.ts";

/** Secret-holding volumes' tmpfs: bounded (a Secret is at most 1 MiB; an update holds two versions). */
export const SECRET_TMPFS_BYTES = 64n * 1024n * 1024n;

/** Mount points (decoded) of this mount namespace. */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  // Field 5 is the mount point, with space, tab, newline and backslash written as \ooo.
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export async function isMountPoint(dir: string): Promise<boolean> {
  return (await mountPoints()).includes(dir);
}

// Mounts this process made or found: a pod sync must not read mountinfo (long on a busy node) each time.
const known = new Set<string>();

/** Mounts a tmpfs at `dir` unless one is there; `sizeBytes` bounds it (absent: the kernel's default, half the RAM). */
export async function ensureTmpfs(dir: string, opts: { sizeBytes?: bigint; mode?: number } = {}): Promise<void> {
  if (known.has(dir)) return;
  await mkdir(dir, { recursive: true, mode: 0o755 });
  if (await isMountPoint(dir)) {
    known.add(dir);
    return;
  }
  const options = [`mode=${(opts.mode ?? 0o755).toString(8)}`, "nodev", "nosuid"];
  if (opts.sizeBytes !== undefined) options.push(`size=${opts.sizeBytes}`);
  await runChecked("mount", ["-t", "tmpfs", "-o", options.join(","), "tmpfs", dir], { timeoutMs: 30_000 });
  known.add(dir);
}

/** Unmounts every mount at or under `dir`, deepest first (a busy one is detached lazily). */
export async function unmountUnder(dir: string): Promise<void> {
  const under = (await mountPoints()).filter((m) => m === dir || m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  for (const k of known) if (k === dir || k.startsWith(`${dir}/`)) known.delete(k);
  for (const m of under) {
    try {
      await runChecked("umount", [m], { timeoutMs: 30_000 });
    } catch {
      await runChecked("umount", ["-l", m], { timeoutMs: 30_000 });
    }
  }
}
