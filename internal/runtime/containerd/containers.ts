// Containers: a container record (labels, image, runtime, OCI spec, rootfs snapshot key) plus its
// task (the runc process). Create makes the rootfs snapshot, the record and the task (so runc's
// "executable file not found" surfaces here, not at start); remove undoes all three.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Container } from "../../../gen/containerd/services/containers/v1/containers_pb.js";
import { Status, type Process } from "../../../gen/containerd/types/task/task_pb.js";
import { verifyRunAsNonRoot, type ContainerConfig, type ContainerInfo, type ContainerLabels, type ContainerState } from "../runtime.ts";
import type { Services } from "./client.ts";
import { ignoreNotFound, rawMessage } from "./errors.ts";
import { recordedExit } from "./exits.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { layerDirs, resolveImageUser } from "./image-user.ts";
import { buildOciSpec, swapAccountingAvailable } from "./spec.ts";
import { containerLoggerUri, type ContainerLogOptions } from "./stdio.ts";
import type { ImageConfig } from "./spec.ts";

export const RUNTIME_NAME = "io.containerd.runc.v2";
export const SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
export const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

export const LABELS = {
  podUid: "io.skiff.pod.uid",
  podName: "io.skiff.pod.name",
  podNamespace: "io.skiff.pod.namespace",
  containerName: "io.skiff.container.name",
  attempt: "io.skiff.container.attempt",
  logPath: "io.skiff.log-path",
  imageId: "io.skiff.image-id",
  stopSignal: "io.skiff.stop-signal",
  startedAt: "io.skiff.started-at",
  // How it ended, once known (exits.ts): the task that holds the exit status can be lost.
  exitCode: "io.skiff.exit-code",
  finishedAt: "io.skiff.finished-at",
  oomKilled: "io.skiff.oom-killed",
  lost: "io.skiff.lost",
} as const;

export interface CreateParams {
  id: string;
  cfg: ContainerConfig;
  /** The normalized image name (the container record's `image`). */
  imageName: string;
  imageId: string;
  image: ImageConfig;
  stopSignal?: string;
  /** Parent snapshot: the image's top chain ID. */
  parent: string;
  snapshotter: string;
  namespace: string;
  containerLog: ContainerLogOptions;
}

export function labelsFor(p: CreateParams): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.podUid]: p.cfg.podUid,
    [LABELS.podName]: p.cfg.podName,
    [LABELS.podNamespace]: p.cfg.podNamespace,
    [LABELS.containerName]: p.cfg.containerName,
    [LABELS.attempt]: String(p.cfg.attempt),
    [LABELS.logPath]: p.cfg.logPath,
    [LABELS.imageId]: p.imageId,
  };
  if (p.stopSignal) labels[LABELS.stopSignal] = p.stopSignal;
  return labels;
}

/** Snapshot, container record, task. On failure everything made so far is removed again. */
export async function createContainer(svc: Services, p: CreateParams): Promise<void> {
  // Kubernetes checks runAsNonRoot against the image's USER as written (a name cannot pass).
  verifyRunAsNonRoot(p.cfg.security, p.image.user ?? "");
  mkdirSync(dirname(p.cfg.logPath), { recursive: true });
  const log = containerLoggerUri(p.cfg.logPath, p.containerLog);
  const what = `create container ${p.cfg.containerName} of pod ${p.cfg.podNamespace}/${p.cfg.podName}`;
  let step = "snapshot";
  try {
    const { mounts } = await svc.snapshots.prepare({ snapshotter: p.snapshotter, key: p.id, parent: p.parent });
    step = "user";
    // User and group names resolve through the image's own /etc/passwd and /etc/group.
    const user = resolveImageUser(p.image.user ?? "", layerDirs(mounts), p.cfg.security?.runAsUser);
    step = "spec";
    const spec = buildOciSpec(p.cfg, { ...p.image, user }, {
      cgroupsParent: `/${p.namespace}`,
      containerId: p.id,
      limitSwap: swapAccountingAvailable(),
    });
    step = "container";
    await svc.containers.create({
      container: {
        id: p.id,
        labels: labelsFor(p),
        image: p.imageName,
        runtime: { name: RUNTIME_NAME },
        spec: { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) },
        snapshotter: p.snapshotter,
        snapshotKey: p.id,
      },
    });
    step = "task";
    await svc.tasks.create({ containerId: p.id, rootfs: mounts, stdout: log, stderr: log, terminal: p.cfg.tty ?? false });
  } catch (err) {
    await removeContainer(svc, p.id, p.snapshotter).catch(() => {});
    const message = rawMessage(err);
    // runc could not exec the command (not in the image, not executable): the pod spec's fault.
    const code = /\bexec: "/.test(message) ? Code.InvalidArgument : err instanceof ConnectError ? err.code : Code.Internal;
    throw new ConnectError(`${what}: ${step}: ${message}`, code, undefined, undefined, err);
  }
}

/** How long Tasks/Delete is retried while containerd cleans up after a dead shim. */
const DEAD_SHIM_RETRIES = 50;
const DEAD_SHIM_RETRY_MS = 100;

/**
 * Tasks/Delete; a missing task is fine. When a task's shim has died, containerd reports the task
 * NOT_FOUND at once but answers a delete with "ttrpc: closed" until its own clean-up of the shim
 * is done (moments later): wait for that.
 */
async function deleteTask(svc: Services, id: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await ignoreNotFound(() => svc.tasks.delete({ containerId: id }));
      return;
    } catch (err) {
      if (attempt >= DEAD_SHIM_RETRIES || !/ttrpc: closed/.test(rawMessage(err))) throw err;
      await sleep(DEAD_SHIM_RETRY_MS);
    }
  }
}

/** Task delete → snapshot remove → container delete; each missing piece is fine. */
export async function removeContainer(svc: Services, id: string, snapshotter: string): Promise<void> {
  await deleteTask(svc, id);
  await ignoreNotFound(() => svc.snapshots.remove({ snapshotter, key: id }));
  await ignoreNotFound(() => svc.containers.delete({ id }));
}

/** The OCI spec stored in a container record. */
export function specOf(c: Container): Record<string, any> {
  if (!c.spec || c.spec.typeUrl !== SPEC_TYPE_URL) throw new Error(`container ${c.id} has no OCI spec`);
  return JSON.parse(Buffer.from(c.spec.value).toString("utf8")) as Record<string, any>;
}

function stateOf(task: Process | undefined): ContainerState {
  switch (task?.status) {
    case Status.CREATED:
      return "created";
    case Status.RUNNING:
    case Status.PAUSED:
    case Status.PAUSING:
      return "running";
    case Status.STOPPED:
      return "exited";
    default:
      return "unknown";
  }
}

function labelsOf(c: Container): ContainerLabels {
  const l = c.labels;
  return {
    podUid: l[LABELS.podUid] ?? "",
    podName: l[LABELS.podName] ?? "",
    podNamespace: l[LABELS.podNamespace] ?? "",
    containerName: l[LABELS.containerName] ?? "",
    attempt: Number(l[LABELS.attempt] ?? 0),
  };
}

const toDate = (t: { seconds: bigint; nanos: number } | undefined): Date | undefined =>
  t && (t.seconds > 0n || t.nanos > 0) ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : undefined;

/**
 * A container record and its task as the runtime interface reports them. `task` undefined: not
 * known (its shim did not answer); "gone": containerd has no task for it (Tasks/Get said
 * NOT_FOUND). An exit recorded on the record (exits.ts) outlives the task.
 */
export function containerInfo(c: Container, task: Process | undefined | "gone", oomKilled: boolean): ContainerInfo {
  const info: ContainerInfo = {
    ...labelsOf(c),
    id: c.id,
    image: c.image,
    imageId: c.labels[LABELS.imageId] ?? "",
    state: "unknown",
    createdAt: toDate(c.createdAt) ?? new Date(0),
    logPath: c.labels[LABELS.logPath] ?? "",
  };
  const startedAt = c.labels[LABELS.startedAt];
  if (startedAt) info.startedAt = new Date(startedAt);
  const exit = recordedExit(c);
  if (exit && (task === undefined || task === "gone" || task.status === Status.STOPPED)) {
    Object.assign(info, { state: "exited", exitCode: exit.exitCode, finishedAt: exit.finishedAt });
    if (exit.oomKilled || oomKilled) info.oomKilled = true;
    if (exit.lost) info.lost = true;
    return info;
  }
  if (task === "gone") {
    // Never started: that attempt never ran (the agent starts it afresh). Started: its exit was
    // to be recorded before this is called, so only a failed recording lands here.
    info.state = startedAt ? "unknown" : "created";
    return info;
  }
  info.state = stateOf(task);
  if (task && info.state === "running") info.pid = task.pid;
  if (task && info.state === "exited") {
    info.exitCode = task.exitStatus;
    const finished = toDate(task.exitedAt);
    if (finished) info.finishedAt = finished;
    if (oomKilled) info.oomKilled = true;
  }
  return info;
}
