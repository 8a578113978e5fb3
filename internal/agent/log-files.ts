// A container's log as a set of files: the logger (runtime/containerd/logger/cri-logger.pl)
// appends to `<n>.log` and, past --container-log-max-size, renames it to
// `<n>.log.<YYYYMMDD-HHMMSS>.<nanoseconds>` and starts a new `<n>.log`, keeping at most
// --container-log-max-files files. Names sort in time order; the current file is the newest.
// A reader holding a file keeps reading it after a rename (same inode), so a follower finds its
// way by inode: when `<n>.log` is no longer the file it holds, it drains that file and goes on
// with the next one by name.
import type { FileHandle } from "node:fs/promises";
import { open, readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const ROTATED_SUFFIX = /^\.\d{8}-\d{6}\.\d{9}$/;

/** The rotated files of the log at `path`, oldest first (the current file not included). */
export async function rotatedLogFiles(path: string): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => n.startsWith(`${base}.`) && ROTATED_SUFFIX.test(n.slice(base.length)))
    .sort()
    .map((n) => join(dir, n));
}

/** Removes a log and its rotated files (a removed container's: nothing can ask for it again). */
export async function removeLogFiles(path: string): Promise<void> {
  for (const p of [...(await rotatedLogFiles(path)), path]) await rm(p, { force: true });
}

export async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export interface OpenLogFile {
  fh: FileHandle;
  ino: number;
}

async function withIno(fh: FileHandle | undefined): Promise<OpenLogFile | undefined> {
  return fh ? { fh, ino: (await fh.stat()).ino } : undefined;
}

/**
 * Every file of the log, oldest first, open. The current file is opened first and a rotated
 * file that turns out to be it (renamed meanwhile) is left out, so nothing is read twice.
 */
export async function openLogFiles(path: string): Promise<OpenLogFile[]> {
  const current = await withIno(await openIfExists(path));
  const files: OpenLogFile[] = [];
  for (const p of await rotatedLogFiles(path)) {
    const f = await withIno(await openIfExists(p)); // gone: removed by a rotation meanwhile
    if (!f) continue;
    if (f.ino === current?.ino) await f.fh.close();
    else files.push(f);
  }
  if (current) files.push(current);
  return files;
}

/**
 * After the follower's file `ino` was rotated away: the file that comes after it (a rotated one,
 * or the current one), opened; undefined while the new current file does not exist yet. When the
 * follower fell so far behind that its file was removed, the oldest file left.
 */
export async function openNextLogFile(path: string, ino: number): Promise<OpenLogFile | undefined> {
  const files = await openLogFiles(path);
  const at = files.findIndex((f) => f.ino === ino);
  const next = at >= 0 ? files[at + 1] : files[0];
  for (const f of files) if (f !== next) await f.fh.close();
  return next;
}

/** Whether `path` names a different file than `ino` now (the logger rotated it). */
export async function rotatedAway(path: string, ino: number): Promise<boolean> {
  try {
    return (await stat(path)).ino !== ino;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false; // between the rename and the new file: not yet
    throw err;
  }
}

/** The part of FileHandle tailOffset uses. */
export interface RandomAccess {
  stat(): Promise<{ size: number }>;
  read(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Several files read as one (their sizes taken once): a tail can start in an older file. */
export async function concatFiles(files: FileHandle[]): Promise<RandomAccess & { locate(offset: number): { index: number; offset: number } }> {
  const sizes = await Promise.all(files.map(async (f) => (await f.stat()).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const locate = (offset: number) => {
    let index = 0;
    while (index < files.length - 1 && offset >= sizes[index]) offset -= sizes[index++];
    return { index, offset };
  };
  return {
    stat: async () => ({ size: total }),
    locate,
    async read(buf, offset, length, position) {
      let done = 0;
      while (done < length && position + done < total) {
        const at = locate(position + done);
        const want = Math.min(length - done, sizes[at.index] - at.offset);
        const { bytesRead } = await files[at.index].read(buf, offset + done, want, at.offset);
        if (bytesRead === 0) break; // shrank under us
        done += bytesRead;
      }
      return { bytesRead: done };
    },
  };
}
