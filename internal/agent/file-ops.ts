// How the agent writes a pod's small files (/etc files, token and Secret/ConfigMap directories, a
// container's log and termination-log files): with fs's synchronous calls where that is safe,
// through the thread pool elsewhere. The writers are written once, against FileOps, and `await`
// what either form returns.
//
// Why: a node makes 16 file system calls (≈ 40 system calls) for each new pod. Through the thread
// pool each costs the process 28–113 µs of CPU (hand-off, futex, event-loop wake-up); the same call
// made synchronously 5–14 µs (`npm run bench -- pod-files`: bench/README.md, section `scale`).
// Synchronous batches are chained with andThen/allDone below, not awaited call by call: no
// promise and no turn of the event loop per file.
//
// When: a synchronous call blocks the event loop for as long as it takes. On a memory file system
// (tmpfs, ramfs: the token and Secret directories of a real node, the data dir of hollow nodes)
// nothing waits for a device, so a small write takes microseconds. On a disk a write that only
// reaches the page cache is as fast — until the disk stalls: then a mkdir or a file creation
// waits for the journal, the event loop with it, and with it the Lease renewals, so the node
// would go NotReady and lose its pods over a slow disk. So disk-backed directories keep the
// thread pool (a stalled call holds one pool thread, not the agent). And a large batch (Secret
// and ConfigMap volumes reach 1 MiB each) goes through the thread pool anywhere: copying it would
// hold the loop longer than the hand-offs cost.
import * as fs from "node:fs";
import { promisify } from "node:util";

export type MaybePromise<T> = T | Promise<T>;

export interface FileOps {
  mkdir(path: string, opts: fs.MakeDirectoryOptions & { recursive: true }): MaybePromise<string | undefined>;
  readFile(path: string, encoding: "utf8"): MaybePromise<string>;
  /** The file's text, or undefined when there is none (a missing file costs no Error: see readIfExistsSync). */
  readFileIfExists(path: string): MaybePromise<string | undefined>;
  writeFile(path: string, data: string | Uint8Array, opts: { mode: number }): MaybePromise<void>;
  chmod(path: string, mode: number): MaybePromise<void>;
  chown(path: string, uid: number, gid: number): MaybePromise<void>;
  symlink(target: string, path: string): MaybePromise<void>;
  rename(from: string, to: string): MaybePromise<void>;
  readdir(path: string): MaybePromise<string[]>;
  readlink(path: string): MaybePromise<string>;
  rm(path: string, opts: fs.RmOptions): MaybePromise<void>;
}

export const syncFileOps: FileOps = {
  mkdir: (path, opts) => fs.mkdirSync(path, opts),
  readFile: (path, encoding) => fs.readFileSync(path, encoding),
  readFileIfExists: readIfExistsSync,
  writeFile: (path, data, opts) => fs.writeFileSync(path, data, opts),
  chmod: fs.chmodSync,
  chown: fs.chownSync,
  symlink: (target, path) => fs.symlinkSync(target, path),
  rename: fs.renameSync,
  readdir: (path) => fs.readdirSync(path),
  readlink: (path) => fs.readlinkSync(path),
  rm: fs.rmSync,
};

// A synchronous call that fails throws an Error with a stack trace: 10–15 µs for a readFileSync of a
// missing file against 4–6 µs for an existsSync, which makes none (bench/README.md, "podfiles2").
function readIfExistsSync(path: string): string | undefined {
  if (!fs.existsSync(path)) return undefined;
  try {
    return fs.readFileSync(path, "utf8");
  } catch {
    return undefined; // removed in between
  }
}

// The callback forms, promisified: fs/promises' FileHandle-based writeFile costs twice the CPU.
export const asyncFileOps: FileOps = {
  mkdir: promisify(fs.mkdir),
  readFile: promisify(fs.readFile),
  readFileIfExists: (path) => promisify(fs.readFile)(path, "utf8").catch(() => undefined),
  writeFile: promisify(fs.writeFile),
  chmod: promisify(fs.chmod),
  chown: promisify(fs.chown),
  symlink: (target, path) => promisify(fs.symlink)(target, path),
  rename: promisify(fs.rename),
  readdir: (path) => promisify(fs.readdir)(path),
  readlink: (path) => promisify(fs.readlink)(path),
  rm: promisify(fs.rm),
};

/** The most a batch may hold for synchronous calls: a few hundred µs of copying at worst. */
export const SYNC_MAX_BYTES = 256 * 1024;

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const memoryBackedCache = new Map<string, boolean>();

/** Whether `dir` (an existing directory) is on a memory file system; false when it cannot be told. */
export function onMemoryFs(dir: string): boolean {
  let known = memoryBackedCache.get(dir);
  if (known === undefined) {
    try {
      const { type } = fs.statfsSync(dir);
      known = type === TMPFS_MAGIC || type === RAMFS_MAGIC;
    } catch {
      return false; // not there yet: the thread pool this time, asked again next time
    }
    memoryBackedCache.set(dir, known);
  }
  return known;
}

/** The calls for a batch of `bytes` bytes in a directory that is (or is not) memory-backed. */
export function fileOpsFor(memoryBacked: boolean, bytes: number): FileOps {
  return memoryBacked && bytes <= SYNC_MAX_BYTES ? syncFileOps : asyncFileOps;
}

/** Runs `next` once `step` is done: at once after a synchronous call, without a promise or a turn of the loop. */
export function andThen<S, T>(step: MaybePromise<S>, next: (value: S) => MaybePromise<T>): MaybePromise<T> {
  return step instanceof Promise ? step.then(next) : next(step);
}

/** Waits for the steps that are promises (thread-pool calls run at once); a batch of synchronous ones makes none. */
export function allDone(steps: MaybePromise<unknown>[]): MaybePromise<void> {
  const pending = steps.filter((s) => s instanceof Promise);
  return pending.length === 0 ? undefined : Promise.all(pending).then(() => undefined);
}
