// Restoring a snapshot into a fresh one-member etcd data dir (`skiff up --cluster-reset
// --cluster-reset-restore-path FILE`): the file is checked against its sidecar's sha256 (when it
// has one), `etcdctl snapshot restore` builds the new data dir beside the old one (it also checks
// etcd's own hash trailer), the old dir is moved aside — never deleted — and the new one takes
// its place. Only then does etcd start.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { fileSha256, type SnapshotInfo } from "./snapshot.ts";

const run = promisify(execFile);

export interface RestoreOptions {
  /** etcd's data dir (replaced). */
  dataDir: string;
  /** The member's name and peer URL, as etcd will be started with. */
  memberName: string;
  peerUrl: string;
  now?: Date;
}

export interface RestoreResult {
  /** Where the previous data dir went (undefined when there was none). */
  movedAside?: string;
  /**
   * The revision the previous data had reached (etcd's backend; undefined without one). Clients
   * may hold resource versions up to it: bumpRevision() must carry the restored etcd past it.
   */
  previousRevision?: number;
  /** The snapshot's revision, when its sidecar says. */
  revision?: string;
}

/** The revision an etcd backend or snapshot file holds (`etcdctl snapshot status` reads it without etcd). */
export async function dbRevision(db: string): Promise<number> {
  const { stdout } = await run(etcdctl(), ["snapshot", "status", db, "--write-out=json"], { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 60_000 });
  const rev = Number((JSON.parse(stdout) as { revision?: number }).revision);
  if (!Number.isSafeInteger(rev) || rev < 0) throw new Error(`etcdctl snapshot status ${db}: no revision in ${stdout.slice(0, 200)}`);
  return rev;
}

const etcdctl = () => process.env.SKIFF_ETCDCTL_BIN ?? "etcdctl";

export async function restoreSnapshot(file: string, opts: RestoreOptions): Promise<RestoreResult> {
  if (!existsSync(file)) throw new Error(`--cluster-reset-restore-path: ${file} does not exist`);
  let info: SnapshotInfo | undefined;
  if (existsSync(`${file}.json`)) {
    info = JSON.parse(await readFile(`${file}.json`, "utf8")) as SnapshotInfo;
    const sum = await fileSha256(file);
    if (sum !== info.sha256) throw new Error(`${file} is damaged: its sha256 is ${sum}, its sidecar says ${info.sha256}; nothing was changed`);
  }
  const stamp = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const staging = join(dirname(opts.dataDir), `.${basename(opts.dataDir)}-restore-${stamp}`);
  await rm(staging, { recursive: true, force: true });
  try {
    await run(etcdctl(), [
      "snapshot",
      "restore",
      file,
      `--data-dir=${staging}`,
      `--name=${opts.memberName}`,
      `--initial-cluster=${opts.memberName}=${opts.peerUrl}`,
      `--initial-advertise-peer-urls=${opts.peerUrl}`,
      `--initial-cluster-token=skiff-restore-${stamp}`,
    ], { env: { ...process.env, ETCDCTL_API: "3" }, timeout: 5 * 60_000 });
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT") throw new Error("etcdctl is not installed (Debian package etcd-client): it restores snapshots", { cause: err });
    throw new Error(`etcdctl snapshot restore ${file} failed; nothing was changed: ${(e.stderr || e.message).trim().slice(-1000)}`, { cause: err });
  }
  let movedAside: string | undefined;
  let previousRevision: number | undefined;
  const db = join(opts.dataDir, "member", "snap", "db");
  if (existsSync(db)) previousRevision = await dbRevision(db);
  if (existsSync(opts.dataDir)) {
    movedAside = `${opts.dataDir}-old-${stamp}`;
    await rename(opts.dataDir, movedAside);
  }
  await rename(staging, opts.dataDir);
  return { movedAside, previousRevision, revision: info?.revision };
}
