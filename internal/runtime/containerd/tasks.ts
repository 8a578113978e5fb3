// Running tasks: start (Wait issued before Start so the exit cannot be missed), stop (the stop
// signal, a grace period, SIGKILL), and exec (an extra process in a running container, its
// stdout and stderr captured into temp files by the shim's logger, see stdio.ts).

import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { WaitResponse } from "../../../gen/containerd/services/tasks/v1/tasks_pb.js";
import { Status } from "../../../gen/containerd/types/task/task_pb.js";
import type { ExecResult } from "../runtime.ts";
import type { Services } from "./client.ts";
import { codeOf, ignoreNotFound, isNotFound, orUndefined, rawMessage } from "./errors.ts";
import { LABELS, PROCESS_TYPE_URL, specOf } from "./containers.ts";
import { rawLoggerUri } from "./stdio.ts";

/** Exec output kept at most (a probe's output is for humans). */
const MAX_EXEC_OUTPUT = 1024 * 1024;

function readOutput(path: string): string {
  try {
    return readFileSync(path).subarray(0, MAX_EXEC_OUTPUT).toString("utf8");
  } catch {
    return ""; // nothing written
  }
}

export function signalNumber(name: string | undefined, fallback: number): number {
  if (!name) return fallback;
  if (/^\d+$/.test(name)) return Number(name);
  const key = (name.startsWith("SIG") ? name : `SIG${name}`).toUpperCase() as keyof typeof constants.signals;
  return constants.signals[key] ?? fallback;
}

/** Waits for a process to exit; undefined when `signal` fired first. */
async function waitExit(svc: Services, containerId: string, execId: string, signal?: AbortSignal): Promise<WaitResponse | undefined> {
  try {
    return await svc.tasks.wait({ containerId, execId }, { signal });
  } catch (err) {
    if (signal?.aborted) return undefined;
    throw err;
  }
}

export async function startTask(svc: Services, id: string): Promise<void> {
  const stopWaiting = new AbortController();
  const exited = waitExit(svc, id, "", stopWaiting.signal).catch(() => undefined);
  try {
    await svc.tasks.start({ containerId: id });
  } catch (err) {
    throw new ConnectError(`start container ${id}: ${rawMessage(err)}`, codeOf(err) ?? Code.Internal, undefined, undefined, err);
  } finally {
    // The Wait only guards the start against a missed exit; containerd keeps the exit status
    // until Tasks/Delete, so status queries read it from Tasks/Get afterwards.
    stopWaiting.abort();
    await exited;
  }
  await svc.containers.update({
    container: { id, labels: { [LABELS.startedAt]: new Date().toISOString() } },
    updateMask: { paths: [`labels.${LABELS.startedAt}`] },
  });
}

async function kill(svc: Services, id: string, signal: number, execId = ""): Promise<void> {
  try {
    await svc.tasks.kill({ containerId: id, execId, signal });
  } catch (err) {
    // Already exited: "process already finished" (NOT_FOUND) or a stopped task (FAILED_PRECONDITION).
    if (isNotFound(err) || codeOf(err) === Code.FailedPrecondition) return;
    throw err;
  }
}

/** Stop signal, up to `timeoutSeconds` for the exit, then SIGKILL; resolves once it exited. */
export async function stopTask(svc: Services, id: string, timeoutSeconds: number): Promise<void> {
  const task = await orUndefined(() => svc.tasks.get({ containerId: id }));
  const status = task?.process?.status;
  if (status === undefined || status === Status.STOPPED) return;
  const container = await orUndefined(() => svc.containers.get({ id }));
  const stopSignal = signalNumber(container?.container?.labels[LABELS.stopSignal], constants.signals.SIGTERM);
  await kill(svc, id, stopSignal);
  const graceful = await waitExit(svc, id, "", AbortSignal.timeout(Math.max(0, timeoutSeconds) * 1000)).catch((err) => {
    if (isNotFound(err)) return {} as WaitResponse; // deleted meanwhile
    throw err;
  });
  if (graceful) return;
  await kill(svc, id, constants.signals.SIGKILL);
  await waitExit(svc, id, "").catch((err) => {
    if (!isNotFound(err)) throw err;
  });
}

/** Runs `command` in the running container `id`; kills it after `timeoutMs` (DEADLINE_EXCEEDED). */
export async function execInTask(svc: Services, id: string, command: string[], timeoutMs: number): Promise<ExecResult> {
  if (command.length === 0) throw new ConnectError("exec: empty command", Code.InvalidArgument);
  const res = await orUndefined(() => svc.containers.get({ id }));
  if (!res?.container) throw new ConnectError(`exec: container ${id} not found`, Code.NotFound);
  const base = specOf(res.container).process ?? {};
  const process = { ...base, args: command, terminal: false };
  const execId = `exec-${randomBytes(6).toString("hex")}`;
  const dir = mkdtempSync(join(tmpdir(), "skiff-exec-"));
  const out = join(dir, "stdout");
  const err = join(dir, "stderr");
  const stopWaiting = new AbortController();
  let timedOut = false;
  try {
    await svc.tasks.exec({
      containerId: id,
      execId,
      stdout: rawLoggerUri(out, err),
      stderr: rawLoggerUri(out, err),
      spec: { typeUrl: PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify(process)) },
    });
    const exited = waitExit(svc, id, execId, stopWaiting.signal);
    exited.catch(() => {});
    try {
      await svc.tasks.start({ containerId: id, execId });
    } catch (err) {
      throw new ConnectError(`exec in container ${id}: ${rawMessage(err)}`, codeOf(err) ?? Code.Internal, undefined, undefined, err);
    }
    const timer = setTimeout(() => {
      timedOut = true;
      kill(svc, id, constants.signals.SIGKILL, execId).catch(() => {});
    }, timeoutMs);
    let result: WaitResponse | undefined;
    try {
      result = await exited;
    } finally {
      clearTimeout(timer);
    }
    // DeleteProcess returns once the logger has written all output (see stdio.ts).
    await ignoreNotFound(() => svc.tasks.deleteProcess({ containerId: id, execId }));
    if (timedOut) throw new ConnectError(`exec in container ${id}: timed out after ${timeoutMs}ms`, Code.DeadlineExceeded);
    return { exitCode: result?.exitStatus ?? -1, stdout: readOutput(out), stderr: readOutput(err) };
  } finally {
    stopWaiting.abort();
    await ignoreNotFound(() => svc.tasks.deleteProcess({ containerId: id, execId })).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
