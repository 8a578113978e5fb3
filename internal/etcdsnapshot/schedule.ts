// Scheduled snapshots for `skiff up` (k3s' --etcd-snapshot-schedule-cron): at each tick of the
// cron expression, a snapshot named "etcd-snapshot", then the oldest beyond the retention are
// removed. A failed snapshot is logged and the next tick tries again; ticks never overlap.
import { Cron } from "croner";
import type { Logger } from "pino";
import { pruneSnapshots, saveSnapshot, type EtcdConnection } from "./snapshot.ts";

export const SCHEDULED_SNAPSHOT_NAME = "etcd-snapshot";

export interface SnapshotScheduleOptions {
  conn: EtcdConnection;
  dir: string;
  node: string;
  cron: string;
  retention: number;
  log: Logger;
}

export interface SnapshotSchedule {
  /** When the next snapshot is due. */
  next(): Date | null;
  /** No more ticks; resolves once a snapshot under way has finished (and pruned). */
  stop(): Promise<void>;
}

/** Checks a cron expression (throws a message naming the flag). */
export function checkCron(expr: string): void {
  try {
    new Cron(expr, { paused: true }).stop();
  } catch (err) {
    throw new Error(`--etcd-snapshot-schedule-cron "${expr}" is not a cron expression: ${(err as Error).message}`, { cause: err });
  }
}

export function startSnapshotSchedule(opts: SnapshotScheduleOptions): SnapshotSchedule {
  checkCron(opts.cron);
  if (!Number.isInteger(opts.retention) || opts.retention < 1) throw new Error(`--etcd-snapshot-retention must be a whole number ≥ 1, got ${opts.retention}`);
  let running: Promise<void> = Promise.resolve();
  const job = new Cron(opts.cron, { protect: true, unref: true }, () => (running = takeOne()));
  async function takeOne(): Promise<void> {
    try {
      const info = await saveSnapshot(opts.conn, opts.dir, SCHEDULED_SNAPSHOT_NAME, opts.node);
      const removed = await pruneSnapshots(opts.dir, SCHEDULED_SNAPSHOT_NAME, opts.node, opts.retention);
      opts.log.info({ file: info.file, revision: info.revision, size: info.size, pruned: removed }, "etcd snapshot saved");
    } catch (err) {
      opts.log.error({ err: (err as Error).message }, "scheduled etcd snapshot failed; the next one is at the next tick");
    }
  }
  return {
    next: () => job.nextRun(),
    async stop() {
      job.stop();
      await running;
    },
  };
}
