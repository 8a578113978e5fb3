// subPath / subPathExpr: one path inside a volume mounted instead of the whole volume. The path
// is made (a directory) when absent, and must stay inside the volume once symlinks are followed:
// runc resolves the source on the host, so a symlink a container left in an emptyDir could
// otherwise mount any path of the node. The resolved real path is what gets mounted (so a
// configMap key mounted by subPath keeps the version the container started with, as in
// Kubernetes).
//
// On a real node the checked path is also pinned (pinSubPath), as the kubelet does: opened
// (O_PATH, no symlink followed), checked again through the open file, and bind-mounted from
// /proc/<agent>/fd/N to a directory of the pod that containers then mount. A container swapping
// a checked directory for a symlink between the check and runc's mount changes nothing.
import { execFileSync } from "node:child_process";
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, realpathSync, rmdirSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { relativePathProblems } from "../../api/volume-validation.ts";

export class SubPathError extends Error {
  override name = "SubPathError";
}

const inside = (root: string, p: string) => p === root || p.startsWith(`${root}/`);

/** The real host path of `subPath` inside the volume at `volumeRoot`, made when absent. */
export function resolveSubPath(volumeRoot: string, subPath: string): string {
  const problems = relativePathProblems(subPath);
  if (problems.length > 0) throw new SubPathError(`subPath "${subPath}" ${problems.join("; ")}`);
  const root = realpathSync(volumeRoot);
  const parts = subPath.split("/").filter((p) => p !== "" && p !== ".");
  let existing = root;
  let i = 0;
  for (; i < parts.length; i++) {
    const next = join(existing, parts[i]);
    try {
      lstatSync(next);
    } catch {
      break;
    }
    existing = realpathSync(next);
    if (!inside(root, existing)) throw new SubPathError(`subPath "${subPath}" leads outside the volume (through a symlink)`);
  }
  if (i < parts.length) mkdirSync(join(existing, ...parts.slice(i)), { recursive: true, mode: 0o750 });
  const real = realpathSync(join(root, ...parts));
  if (!inside(root, real)) throw new SubPathError(`subPath "${subPath}" leads outside the volume (through a symlink)`);
  return real;
}

/** Linux's O_PATH (not in Node's fs.constants): a handle on the file itself, opened without reading. */
const O_PATH = 0o10000000;

/**
 * Bind-mounts the real path `real` (inside `volumeRoot`) at `dest`, through a handle opened
 * without following symlinks and checked again, so that what is mounted is what was checked.
 * A mount already at `dest` (a container's earlier instance) is replaced. Returns `dest`.
 */
export function pinSubPath(volumeRoot: string, real: string, dest: string): string {
  const root = realpathSync(volumeRoot);
  const fd = openSync(real, O_PATH | constants.O_NOFOLLOW);
  try {
    const opened = readlinkSync(`/proc/self/fd/${fd}`);
    if (!inside(root, opened)) throw new SubPathError(`subPath ${real} leads outside the volume (changed while being checked)`);
    const isDir = fstatSync(fd).isDirectory();
    try {
      execFileSync("umount", ["-l", dest], { stdio: "ignore" });
    } catch {
      // nothing mounted there yet
    }
    // Only an empty directory or a file of ours can be there now: rmdir and unlink remove nothing else.
    for (const remove of [rmdirSync, unlinkSync]) {
      try {
        remove(dest);
      } catch {
        // not that kind, or absent
      }
    }
    mkdirSync(dirname(dest), { recursive: true, mode: 0o750 });
    if (isDir) mkdirSync(dest, { mode: 0o750 });
    else writeFileSync(dest, "", { mode: 0o600, flag: "wx" });
    // --no-canonicalize: mount(8) would otherwise turn the fd's link back into a path to look up.
    execFileSync("mount", ["--no-canonicalize", "--bind", `/proc/${process.pid}/fd/${fd}`, dest], { stdio: ["ignore", "ignore", "pipe"] });
    return dest;
  } finally {
    closeSync(fd);
  }
}
