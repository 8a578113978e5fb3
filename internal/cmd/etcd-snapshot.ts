// `skiff etcd-snapshot save|ls|prune|delete`: snapshots of the cluster's etcd, on this machine's
// disk (internal/etcdsnapshot). etcd is found as `skiff up` runs it (under --state-dir: its port,
// the PKI's etcd CA and the apiserver's etcd client certificate) unless the --etcd-* flags say otherwise.
import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { deleteSnapshot, listSnapshots, pruneSnapshots, saveSnapshot, type EtcdConnection } from "../etcdsnapshot/snapshot.ts";
import { checkCron, SCHEDULED_SNAPSHOT_NAME } from "../etcdsnapshot/schedule.ts";
import { guarded } from "./guard.ts";

/** Where snapshots of a state dir live (k3s: <data-dir>/server/db/snapshots). */
export function snapshotDir(stateDir: string): string {
  return join(stateDir, "db", "snapshots");
}

const where = {
  "state-dir": { type: "string", description: "The state dir `skiff up` uses (etcd, PKI; snapshots under db/snapshots)", default: join(homedir(), ".skiff", "state") },
  dir: { type: "string", description: "Where snapshots are kept (default: <state-dir>/db/snapshots)", valueHint: "DIR" },
  "node-name": { type: "string", description: "This node's name, part of each snapshot's file name (default: the hostname, lowercased)" },
} as const;

const etcdArgs = {
  "etcd-port": { type: "string", description: "etcd's client port on 127.0.0.1, as `skiff up --etcd-port`", default: "2379" },
  "etcd-endpoint": { type: "string", description: "etcd client URL (instead of 127.0.0.1:--etcd-port)", valueHint: "URL" },
  "etcd-cafile": { type: "string", description: "CA of etcd's serving certificate (default: <state-dir>/pki/etcd-ca.crt)", valueHint: "FILE" },
  "etcd-certfile": { type: "string", description: "Client certificate for etcd (default: <state-dir>/pki/etcd-client.crt)", valueHint: "FILE" },
  "etcd-keyfile": { type: "string", description: "Its key (default: <state-dir>/pki/etcd-client.key)", valueHint: "FILE" },
} as const;

type WhereArgs = { "state-dir": string; dir?: string; "node-name"?: string };

function dirOf(args: WhereArgs): string {
  return resolve(args.dir ?? snapshotDir(resolve(args["state-dir"])));
}

function nodeOf(args: WhereArgs): string {
  return args["node-name"] || hostname().toLowerCase();
}

export function etcdConnection(args: WhereArgs & { "etcd-port": string; "etcd-endpoint"?: string; "etcd-cafile"?: string; "etcd-certfile"?: string; "etcd-keyfile"?: string }): EtcdConnection {
  const pki = join(resolve(args["state-dir"]), "pki");
  const endpoint = args["etcd-endpoint"] ?? `https://127.0.0.1:${args["etcd-port"]}`;
  if (!endpoint.startsWith("https://")) return { endpoints: [endpoint] };
  const read = (file: string, flag: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code}); is --state-dir the one \`skiff up\` uses?`, { cause: err });
    }
  };
  return {
    endpoints: [endpoint],
    tls: {
      ca: read(args["etcd-cafile"] ?? join(pki, "etcd-ca.crt"), "--etcd-cafile"),
      cert: read(args["etcd-certfile"] ?? join(pki, "etcd-client.crt"), "--etcd-certfile"),
      key: read(args["etcd-keyfile"] ?? join(pki, "etcd-client.key"), "--etcd-keyfile"),
    },
  };
}

const save = defineCommand({
  meta: { name: "save", description: "Take a snapshot of etcd now" },
  args: { ...where, ...etcdArgs, name: { type: "string", description: "The snapshot's name (its file is <name>-<node>-<unix time>)", default: "on-demand" } },
  run: guarded(async ({ args }) => {
    const info = await saveSnapshot(etcdConnection(args), dirOf(args), args.name, nodeOf(args));
    process.stdout.write(`snapshot ${info.file} saved in ${dirOf(args)} (revision ${info.revision}, ${info.size} bytes, sha256 ${info.sha256})\n`);
  }),
});

const ls = defineCommand({
  meta: { name: "ls", description: "List the snapshots on this machine, newest first" },
  args: { ...where },
  run: guarded(async ({ args }) => {
    const rows = [["NAME", "CREATED", "REVISION", "SIZE"]];
    for (const s of await listSnapshots(dirOf(args))) rows.push([s.file, s.createdAt, s.revision, String(s.size)]);
    const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    process.stdout.write(rows.map((r) => r.map((c, i) => c.padEnd(width[i])).join("  ").trimEnd()).join("\n") + "\n");
  }),
});

const prune = defineCommand({
  meta: { name: "prune", description: "Remove the oldest snapshots of a name, keeping --retention" },
  args: {
    ...where,
    name: { type: "string", description: "Which snapshots (the name they were saved with)", default: SCHEDULED_SNAPSHOT_NAME },
    retention: { type: "string", description: "How many of the newest to keep", default: "5" },
  },
  run: guarded(async ({ args }) => {
    const removed = await pruneSnapshots(dirOf(args), args.name, nodeOf(args), Number(args.retention));
    for (const f of removed) process.stdout.write(`removed ${f}\n`);
    if (removed.length === 0) process.stdout.write("nothing to remove\n");
  }),
});

const del = defineCommand({
  meta: { name: "delete", description: "Remove snapshots by file name (as `ls` shows them)" },
  args: { ...where, names: { type: "positional", description: "Snapshot file names", required: true } },
  run: guarded(async ({ args }) => {
    const names = (args._ as string[]).length ? (args._ as string[]) : [args.names];
    for (const n of names) {
      await deleteSnapshot(dirOf(args), n);
      process.stdout.write(`removed ${n}\n`);
    }
  }),
});

export const etcdSnapshotCommand = defineCommand({
  meta: { name: "etcd-snapshot", description: "Save, list, prune and delete snapshots of the cluster's etcd" },
  subCommands: { save, ls, prune, delete: del },
});

/** `skiff up`'s snapshot and restore flags. */
export const upSnapshotArgs = {
  "etcd-snapshot-schedule-cron": { type: "string", description: "When to take scheduled etcd snapshots (cron, local time)", default: "0 */12 * * *" },
  "etcd-snapshot-retention": { type: "string", description: "How many scheduled snapshots to keep", default: "5" },
  "etcd-disable-snapshots": { type: "boolean", description: "Take no scheduled snapshots", default: false },
  "cluster-reset": { type: "boolean", description: "Replace etcd's data with --cluster-reset-restore-path's snapshot (the old data dir is moved aside), then start", default: false },
  "cluster-reset-restore-path": { type: "string", description: "The snapshot file --cluster-reset restores", valueHint: "FILE" },
} as const;

type UpSnapshotFlags = { "etcd-snapshot-schedule-cron": string; "etcd-snapshot-retention": string; "etcd-disable-snapshots": boolean; "cluster-reset": boolean; "cluster-reset-restore-path"?: string };

/** Checks the flags before anything starts; returns the snapshot schedule's settings (undefined: none). */
export function upSnapshotOptions(args: UpSnapshotFlags): { cron: string; retention: number } | undefined {
  if (args["cluster-reset-restore-path"] && !args["cluster-reset"]) throw new Error("--cluster-reset-restore-path needs --cluster-reset");
  // One member only for now: a reset without a snapshot would have nothing to do.
  if (args["cluster-reset"] && !args["cluster-reset-restore-path"]) throw new Error("--cluster-reset needs --cluster-reset-restore-path FILE (the snapshot to restore; see `skiff etcd-snapshot ls`)");
  if (args["etcd-disable-snapshots"]) return undefined;
  const retention = Number(args["etcd-snapshot-retention"]);
  if (!Number.isInteger(retention) || retention < 1) throw new Error(`--etcd-snapshot-retention must be a whole number ≥ 1, got "${args["etcd-snapshot-retention"]}"`);
  checkCron(args["etcd-snapshot-schedule-cron"]);
  return { cron: args["etcd-snapshot-schedule-cron"], retention };
}
