// How a container ended, kept on its container record (labels), because containerd keeps it only
// in the task: after a reboot (every task and shim gone, containerd's state on tmpfs) or a shim
// killed with SIGKILL, the task is gone and with it the exit status.
//
//   task STOPPED, record not yet labelled ─► record the exit: exit code, finish time, OOM kill
//   no task (Tasks/Get says NOT_FOUND), started, no exit recorded
//                                         ─► record it as lost: exit code 255, finished now
//   no task, never started                ─► "created": the agent starts that attempt afresh
//
// A task that Tasks/List leaves out but Tasks/Get does not deny (its shim is slow) is neither:
// its state is "unknown" until it answers. A container's id is never started twice (a restart
// is a new container), so a recorded exit stays true.
import type { Container } from "../../../gen/containerd/services/containers/v1/containers_pb.js";
import { Status, type Process } from "../../../gen/containerd/types/task/task_pb.js";
import type { Services } from "./client.ts";
import { LABELS } from "./containers.ts";
import { ignoreNotFound } from "./errors.ts";

/** Kubernetes' (and containerd CRI's) exit code of a container whose end nobody saw. */
export const LOST_EXIT_CODE = 255;

export interface RecordedExit {
  exitCode: number;
  finishedAt: Date;
  oomKilled: boolean;
  /** The process was gone with its task: nobody saw it end. */
  lost: boolean;
}

/** The exit recorded on the record, if any. */
export function recordedExit(c: Container): RecordedExit | undefined {
  const code = c.labels[LABELS.exitCode];
  if (code === undefined || !/^-?\d+$/.test(code)) return undefined;
  const at = new Date(c.labels[LABELS.finishedAt] ?? "");
  return {
    exitCode: Number(code),
    finishedAt: Number.isNaN(at.getTime()) ? new Date(0) : at,
    oomKilled: c.labels[LABELS.oomKilled] === "true",
    lost: c.labels[LABELS.lost] === "true",
  };
}

/**
 * What to record for a container, if anything. `task`: its task; "gone": containerd has none
 * (NOT_FOUND); undefined: not known (the shim did not answer), so nothing is recorded.
 */
export function exitToRecord(c: Container, task: Process | "gone" | undefined, oomKilled: () => boolean, now: Date): RecordedExit | undefined {
  if (recordedExit(c)) return undefined;
  if (task !== "gone" && task?.status === Status.STOPPED) {
    const t = task.exitedAt;
    const finishedAt = t && (t.seconds > 0n || t.nanos > 0) ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : now;
    return { exitCode: task.exitStatus, finishedAt, oomKilled: oomKilled(), lost: false };
  }
  if (task === "gone" && c.labels[LABELS.startedAt]) return { exitCode: LOST_EXIT_CODE, finishedAt: now, oomKilled: false, lost: true };
  return undefined;
}

/** The labels that record an exit. */
export function exitLabels(exit: RecordedExit): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.exitCode]: String(exit.exitCode),
    [LABELS.finishedAt]: exit.finishedAt.toISOString(),
  };
  if (exit.oomKilled) labels[LABELS.oomKilled] = "true";
  if (exit.lost) labels[LABELS.lost] = "true";
  return labels;
}

/** Writes the exit onto the record's labels; a record deleted meanwhile is fine. */
export async function recordExit(svc: Pick<Services, "containers">, id: string, exit: RecordedExit): Promise<void> {
  const labels = exitLabels(exit);
  await ignoreNotFound(() =>
    svc.containers.update({ container: { id, labels }, updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) } }),
  );
}
