// Kubernetes' atomic writer: a directory whose files all change at once, so that a reader inside a
// container never sees half an update (a new token beside an old CA):
//
//   <dir>/..2026_01_01_00_00_00.123456789/{token,ca.crt,namespace}   this version's files
//   <dir>/..data -> ..2026_01_01_00_00_00.123456789                    swapped by rename(2)
//   <dir>/token -> ..data/token                                         stable names, made once
//
// The directory is bind-mounted into containers; the symlinks resolve inside the mount.
import { mkdir, readdir, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

const DATA = "..data";

function versionName(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}`;
  return `..${stamp}.${p(d.getUTCMilliseconds(), 3)}${Math.random().toString(36).slice(2, 8)}`;
}

/** Replaces every file of `dir` with `files` in one step; files no longer listed disappear. */
export async function writeAtomicDir(dir: string, files: Record<string, string>, mode = 0o644): Promise<void> {
  for (const name of Object.keys(files)) {
    if (name.startsWith("..") || name.includes("/") || name === "") throw new Error(`atomic dir: bad file name "${name}"`);
  }
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const version = versionName();
  await mkdir(join(dir, version), { mode: 0o755 });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, version, name), text, { mode });
  const tmp = join(dir, `${DATA}_tmp`);
  await rm(tmp, { force: true });
  await symlink(version, tmp);
  await rename(tmp, join(dir, DATA));
  const entries = await readdir(dir);
  for (const name of Object.keys(files)) {
    if (!entries.includes(name)) await symlink(join(DATA, name), join(dir, name));
  }
  for (const e of entries) {
    // Old versions, and stable names of files that are gone.
    if (e.startsWith("..") && e !== DATA && e !== version && e !== `${DATA}_tmp`) await rm(join(dir, e), { recursive: true, force: true });
    else if (!e.startsWith("..") && !(e in files) && (await readlink(join(dir, e)).catch(() => "")).startsWith(DATA)) await rm(join(dir, e), { force: true });
  }
}
