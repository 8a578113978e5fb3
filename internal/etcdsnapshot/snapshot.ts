// etcd snapshots on local disk: taken through etcd's Maintenance.Snapshot stream (the same bytes
// `etcdctl snapshot save` writes, etcd's own sha256 trailer included, so `etcdctl snapshot
// restore` checks them), written to a temp file and renamed into place (0600), with a JSON sidecar
// (`<file>.json`) holding what `ls` shows and the sha256 a restore checks first.
//
//   <dir>/<name>-<node>-<unix seconds>        the snapshot
//   <dir>/<name>-<node>-<unix seconds>.json   {name, node, createdAt, revision, size, sha256}
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import type { EtcdTls } from "../storage/etcd.ts";
import { dbRevision } from "./restore.ts";

export interface SnapshotInfo {
  /** The file name (no directory). */
  file: string;
  name: string;
  node: string;
  /** ISO time the snapshot was taken. */
  createdAt: string;
  /** etcd's revision when the snapshot began. */
  revision: string;
  size: number;
  sha256: string;
}

export interface EtcdConnection {
  endpoints: string[];
  tls?: EtcdTls;
}

/** Names are one path segment of letters, digits, `.`, `_` and `-` (they become file names). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
/** Bounded: a stuck stream must not hold the process forever. */
const SNAPSHOT_TIMEOUT_MS = 5 * 60_000;

export function checkSnapshotName(name: string, what = "--name"): void {
  if (!NAME.test(name)) throw new Error(`${what} "${name.slice(0, 64)}" is not a valid snapshot name: letters, digits, '.', '_' and '-', at most 100, not starting with a symbol`);
}

/** Takes a snapshot of the etcd at `conn` into `dir`; returns what was written. */
export async function saveSnapshot(conn: EtcdConnection, dir: string, name: string, node: string, now = new Date()): Promise<SnapshotInfo> {
  checkSnapshotName(name);
  checkSnapshotName(node, "the node name");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = `${name}-${node}-${Math.floor(now.getTime() / 1000)}`;
  const tmp = join(dir, `.${file}.part`);
  const client = new Etcd3({
    hosts: conn.endpoints,
    credentials: conn.tls ? { rootCertificate: Buffer.from(conn.tls.ca), certChain: Buffer.from(conn.tls.cert), privateKey: Buffer.from(conn.tls.key) } : undefined,
    faultHandling: { host: () => noRetry, global: noRetry } as never,
  });
  try {
    const hash = createHash("sha256");
    let revision = "";
    let size = 0;
    const out = createWriteStream(tmp, { mode: 0o600 });
    const stream = await client.maintenance.snapshot();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd snapshot did not finish within ${SNAPSHOT_TIMEOUT_MS / 1000}s`)), SNAPSHOT_TIMEOUT_MS);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      out.on("error", fail);
      stream.on("error", (err) => fail(new Error(`etcd snapshot failed: ${err.message}`)));
      stream.on("data", (chunk) => {
        if (!revision && Number(chunk.header?.revision) > 0) revision = String(chunk.header.revision);
        hash.update(chunk.blob);
        size += chunk.blob.length;
        out.write(chunk.blob);
      });
      stream.on("end", () => {
        clearTimeout(timer);
        out.end(() => resolve());
      });
    });
    if (size === 0) throw new Error("etcd sent an empty snapshot");
    // etcd 3.4 sends no header with the snapshot: the file says which revision it holds.
    if (!revision) revision = String(await dbRevision(tmp));
    const info: SnapshotInfo = { file, name, node, createdAt: now.toISOString(), revision, size, sha256: hash.digest("hex") };
    await rename(tmp, join(dir, file));
    await writeFileAtomic(join(dir, `${file}.json`), JSON.stringify(info, null, 2) + "\n");
    return info;
  } finally {
    client.close();
    await rm(tmp, { force: true });
  }
}

const noRetry = { execute: async (fn: (ctx: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };

async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/** The snapshots in `dir` that have a sidecar, newest first. */
export async function listSnapshots(dir: string): Promise<SnapshotInfo[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: SnapshotInfo[] = [];
  for (const e of entries) {
    if (!e.endsWith(".json") || e.startsWith(".")) continue;
    try {
      const info = JSON.parse(await readFile(join(dir, e), "utf8")) as SnapshotInfo;
      if (info.file === e.slice(0, -5)) out.push(info);
    } catch {
      // a sidecar being written or not ours
    }
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.file.localeCompare(a.file));
}

/** Removes one snapshot and its sidecar; NotFound-like error when it is not there. */
export async function deleteSnapshot(dir: string, file: string): Promise<void> {
  checkSnapshotName(file, "snapshot");
  const path = join(dir, file);
  try {
    await stat(path);
  } catch {
    throw new Error(`snapshot "${file}" not found in ${dir} (see \`skiff etcd-snapshot ls\`)`);
  }
  await rm(path, { force: true });
  await rm(`${path}.json`, { force: true });
}

/** Keeps the `retention` newest snapshots called `name` taken on `node`; returns the files removed. */
export async function pruneSnapshots(dir: string, name: string, node: string, retention: number): Promise<string[]> {
  if (!Number.isInteger(retention) || retention < 1) throw new Error(`--retention must be a whole number ≥ 1, got ${retention}`);
  const mine = (await listSnapshots(dir)).filter((s) => s.name === name && s.node === node);
  const removed: string[] = [];
  for (const s of mine.slice(retention)) {
    await deleteSnapshot(dir, s.file);
    removed.push(s.file);
  }
  return removed;
}

/** sha256 of a file, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
