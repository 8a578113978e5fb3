// Kubernetes' atomic writer: a directory whose files all change at once, so that a reader inside a
// container never sees half an update (a new token beside an old CA, half a config file):
//
//   <dir>/..2026_01_01_00_00_00.123456789/{token,ca.crt,namespace}   this version's files
//   <dir>/..data -> ..2026_01_01_00_00_00.123456789                    swapped by rename(2)
//   <dir>/token -> ..data/token                                         stable names, made once
//
// A file path may have directories ("conf/app.yaml"): the stable name is its first element.
// The directory is bind-mounted into containers; the symlinks resolve inside the mount.
//
// The version ..data pointed to before a swap is kept until the next one (Kubernetes removes it at
// once): a reader whose path lookup went through the old ..data a moment before the swap still
// finds its file instead of ENOENT. At most two versions exist after any write.
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { allDone, andThen, fileOpsFor, type MaybePromise } from "./file-ops.ts";

const DATA = "..data";

export interface AtomicFile {
  /** Relative path inside the directory (no "..", not starting with "..", no leading "/"). */
  path: string;
  data: string | Uint8Array;
  mode: number;
}

export interface AtomicWriteOptions {
  /** Group owner of every file (the pod's fsGroup): the group may read them. */
  fsGroup?: number;
  /**
   * Keep earlier versions: a container's subPath mount holds a file of the version it started
   * with, and removing it would take the file away from under that mount.
   */
  keepOldVersions?: boolean;
  /**
   * The directory is on a memory file system (a tmpfs mount, or a data dir on one): a small
   * batch is written with synchronous calls (file-ops.ts says why only there). The files, modes
   * and the order of the steps are the same either way.
   */
  memoryBacked?: boolean;
  /**
   * false: the caller writes only when the content changed (a new token), so there is nothing to
   * compare with and no digest to make. Default true: a write of what the directory holds is skipped.
   */
  skipUnchanged?: boolean;
}

function versionName(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const stamp = `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}`;
  return `..${stamp}.${p(d.getUTCMilliseconds(), 3)}${Math.random().toString(36).slice(2, 8)}`;
}

/** A file path the writer accepts: relative, no "..", not hidden behind the writer's own names. */
export function checkAtomicPath(path: string): void {
  const parts = path.split("/");
  if (path === "" || path.startsWith("/") || parts.includes("..") || parts.includes("") || path.startsWith("..")) {
    throw new Error(`atomic dir: bad file path "${path}"`);
  }
}

// What each directory last got (a digest of files, modes and owner), so that a sync changing
// nothing writes nothing: configMap and secret volumes are written again at every pod sync.
const lastDigest = new Map<string, string>();

function digestOf(files: AtomicFile[], opts: AtomicWriteOptions): string {
  const h = createHash("sha256");
  h.update(`${opts.fsGroup ?? ""}\0`);
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    h.update(`${f.path}\0${f.mode}\0${Buffer.byteLength(f.data)}\0`);
    h.update(f.data);
  }
  return h.digest("hex");
}

/** Replaces every file of `dir` with `files` in one step; files no longer listed disappear. Returns whether it wrote. */
export async function writeAtomicFiles(dir: string, files: AtomicFile[], opts: AtomicWriteOptions = {}): Promise<boolean> {
  for (const f of files) checkAtomicPath(f.path);
  const digest = opts.skipUnchanged === false ? undefined : digestOf(files, opts);
  if (digest !== undefined && lastDigest.get(dir) === digest) return false;
  const ops = fileOpsFor(opts.memoryBacked === true, files.reduce((n, f) => n + Buffer.byteLength(f.data), 0));
  const { mkdir, writeFile, chmod, chown, symlink, rename, readdir, readlink, rm } = ops;
  const version = versionName();
  // Paths by concatenation: `dir` is a joined path and every file path was checked above.
  const vdir = `${dir}/${version}`;
  // One mkdir makes the version directory and, if missing, the directory itself: it returns the
  // first directory it created. A directory made just now holds nothing: no listing to clean
  // up, no ..data to swap.
  const first = await mkdir(vdir, { recursive: true, mode: 0o755 });
  const fresh = first !== undefined && first !== vdir;
  const subdirs = new Set<string>();
  for (const f of files) {
    const parent = dirname(`${vdir}/${f.path}`);
    if (parent !== vdir && !subdirs.has(parent)) {
      await mkdir(parent, { recursive: true, mode: 0o755 });
      subdirs.add(parent);
    }
  }
  // Read once per batch: process.umask() sets the mask to read it (two system calls).
  const umask = process.umask();
  // The files at once: nobody sees the version directory before ..data points to it, and a
  // pod's sync waits for each round trip to the thread pool in turn otherwise. Synchronous calls
  // run one after another here without a promise per file.
  await allDone(
    files.map((f) => {
      const path = `${vdir}/${f.path}`;
      return andThen(writeFile(path, f.data, { mode: f.mode }), () =>
        // writeFile's mode is masked by the umask; the file must have exactly the mode asked for.
        andThen((f.mode & umask) !== 0 ? chmod(path, f.mode) : undefined, () => (opts.fsGroup !== undefined ? chown(path, 0, opts.fsGroup) : undefined)),
      );
    }),
  );
  const top = new Set(files.map((f) => f.path.split("/")[0]));
  if (fresh) {
    // symlink(2) is atomic on its own: nobody can see a half-made ..data. The stable names may
    // point to it before it exists (a dangling link resolves once it does).
    const links: MaybePromise<void>[] = [symlink(version, `${dir}/${DATA}`)];
    for (const name of top) links.push(symlink(`${DATA}/${name}`, `${dir}/${name}`));
    await allDone(links);
    remember(dir, digest);
    return true;
  }
  const tmp = join(dir, `${DATA}_tmp`);
  try {
    await symlink(version, tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    await rm(tmp, { force: true }); // left by a write that was interrupted
    await symlink(version, tmp);
  }
  const previous = await linkTarget(join(dir, DATA));
  await rename(tmp, join(dir, DATA));
  const entries = await readdir(dir);
  for (const name of top) {
    if (!entries.includes(name)) await symlink(join(DATA, name), join(dir, name));
  }
  for (const e of entries) {
    // Versions older than the previous one, and stable names of files that are gone.
    if (e.startsWith("..") && e !== DATA && e !== version && e !== previous && e !== `${DATA}_tmp`) {
      if (!opts.keepOldVersions) await rm(join(dir, e), { recursive: true, force: true });
    } else if (!e.startsWith("..") && !top.has(e) && (await linkTarget(join(dir, e))).startsWith(DATA)) await rm(join(dir, e), { force: true });
  }
  remember(dir, digest);
  return true;

  async function linkTarget(path: string): Promise<string> {
    try {
      return await readlink(path);
    } catch {
      return ""; // not a symlink: a file the writer did not make
    }
  }
}

function remember(dir: string, digest: string | undefined): void {
  if (digest === undefined) lastDigest.delete(dir);
  else lastDigest.set(dir, digest);
}

/** Forgets what was written under `dir` (the pod is gone). */
export function forgetAtomicDirs(under: string): void {
  for (const dir of lastDigest.keys()) if (dir === under || dir.startsWith(`${under}/`)) lastDigest.delete(dir);
}

/** Replaces every file of `dir` with `files` (name → text), all with `mode`. */
export async function writeAtomicDir(dir: string, files: Record<string, string>, mode = 0o644, opts: AtomicWriteOptions = {}): Promise<void> {
  for (const name of Object.keys(files)) {
    if (name.startsWith("..") || name.includes("/") || name === "") throw new Error(`atomic dir: bad file name "${name}"`);
  }
  await writeAtomicFiles(
    dir,
    Object.entries(files).map(([path, data]) => ({ path, data, mode })),
    opts,
  );
}
