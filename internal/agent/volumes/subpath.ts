// subPath / subPathExpr: one path inside a volume mounted instead of the whole volume. The path
// is made (a directory) when absent, and must stay inside the volume once symlinks are followed:
// runc resolves the source on the host, so a symlink a container left in an emptyDir could
// otherwise mount any path of the node. The resolved real path is what gets mounted (so a
// configMap key mounted by subPath keeps the version the container started with, as in
// Kubernetes).
import { lstatSync, mkdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
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
