// AgentService.Logs: a container's log file, read straight from disk. The runtime appends the
// container's stdout and stderr to ContainerInfo.logPath (<rootDir>/pods/<uid>/logs/<name>/<attempt>.log);
// the current instance is the newest by attempt, `previous` the one before it (the pod worker
// keeps exactly one terminated instance for this).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { open, type FileHandle } from "node:fs/promises";
import { AgentServiceLogsResponseSchema, type AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import { instancesByName } from "./pod-status.ts";
import { sleep } from "../util/sleep.ts";

export interface LogsDeps {
  nodeName: string;
  runtime: ContainerRuntime;
  /** A pod bound to this node, by namespace and name. */
  lookupPod(namespace: string, name: string): Pod | undefined;
  /** How often a followed log is checked for new output. Default 250 ms. */
  pollMs?: number;
}

const CHUNK = 64 * 1024;

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Where the last `lines` lines of the file start (a final newline ends a line, not starts one). */
export async function tailOffset(fh: FileHandle, lines: number): Promise<number> {
  const size = (await fh.stat()).size;
  if (lines <= 0) return size;
  let seen = 0;
  let end = size;
  const buf = Buffer.alloc(CHUNK);
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const { bytesRead } = await fh.read(buf, 0, end - start, start);
    for (let i = bytesRead - 1; i >= 0; i--) {
      const at = start + i;
      if (buf[i] === 0x0a && at !== size - 1 && ++seen === lines) return at + 1;
    }
    end = start;
  }
  return 0;
}

export interface StreamOptions {
  tailLines?: number;
  follow: boolean;
  /** While true, a followed stream waits for more output. */
  stillWriting(): Promise<boolean>;
  signal: AbortSignal;
  pollMs: number;
}

/** Reads from offset to the end of the file, a fresh buffer per chunk (the consumer keeps them). */
async function* readToEnd(fh: FileHandle, from: { offset: number }): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buf = Buffer.alloc(CHUNK);
    const { bytesRead } = await fh.read(buf, 0, CHUNK, from.offset);
    if (bytesRead === 0) return;
    from.offset += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** The file's bytes from the start (or the last tailLines lines), then, with follow, what is appended. */
export async function* streamLogFile(path: string, opts: StreamOptions): AsyncGenerator<Uint8Array> {
  let fh = await openIfExists(path);
  const pos = { offset: fh && opts.tailLines !== undefined ? await tailOffset(fh, opts.tailLines) : 0 };
  try {
    for (;;) {
      if (fh) yield* readToEnd(fh, pos);
      if (!opts.follow || opts.signal.aborted) return;
      if (!(await opts.stillWriting())) {
        // The runtime's log copier may still be flushing the last output: one more read after a pause.
        await sleep(opts.pollMs, opts.signal);
        fh ??= await openIfExists(path);
        if (fh) yield* readToEnd(fh, pos);
        return;
      }
      await sleep(opts.pollMs, opts.signal);
      if (opts.signal.aborted) return;
      fh ??= await openIfExists(path);
    }
  } finally {
    await fh?.close();
  }
}

export function createLogsService(deps: LogsDeps): ServiceImpl<typeof AgentService> {
  const pollMs = deps.pollMs ?? 250;
  return {
    async *logs(req, ctx) {
      if (req.timestamps || req.sinceSeconds !== undefined) {
        throw new ConnectError(
          "timestamps and since_seconds need timestamped log lines; this node's runtime writes raw container output (not supported yet)",
          Code.Unimplemented,
        );
      }
      if (req.pod === "") throw new ConnectError("pod: required", Code.InvalidArgument);
      if (req.tailLines !== undefined && req.tailLines < 0n) throw new ConnectError("tail_lines: must be >= 0", Code.InvalidArgument);
      const namespace = req.namespace || "default";
      const pod = deps.lookupPod(namespace, req.pod);
      if (!pod) throw new ConnectError(`pod "${req.pod}" not found in namespace "${namespace}" on node "${deps.nodeName}"`, Code.NotFound);
      const spec = pod.spec!;
      const all = [...spec.initContainers, ...spec.containers].map((c) => c.name);
      let name = req.container;
      if (name === "") {
        if (spec.containers.length !== 1) {
          throw new ConnectError(`a container name must be specified for pod ${req.pod}, choose one of: [${all.join(" ")}]`, Code.InvalidArgument);
        }
        name = spec.containers[0].name;
      }
      if (!all.includes(name)) {
        throw new ConnectError(`container "${name}" is not valid for pod "${req.pod}": choose one of: [${all.join(" ")}]`, Code.NotFound);
      }
      const uid = pod.metadata!.uid;
      const instances = instancesByName((await deps.runtime.listContainers()).filter((c) => c.podUid === uid)).get(name) ?? [];
      const target = req.previous ? instances[1] : instances[0];
      if (!target) {
        if (req.previous) throw new ConnectError(`previous terminated container "${name}" in pod "${req.pod}" not found`, Code.NotFound);
        // As kubectl shows it: `… is waiting to start: ImagePullBackOff`.
        const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
        const reason = statuses.find((s) => s.name === name)?.state?.waiting?.reason || "ContainerCreating";
        throw new ConnectError(`container "${name}" in pod "${req.pod}" is waiting to start: ${reason}`, Code.FailedPrecondition);
      }
      const stream = streamLogFile(target.logPath, {
        tailLines: req.tailLines === undefined ? undefined : Number(req.tailLines),
        follow: req.follow && !req.previous,
        stillWriting: async () => (await deps.runtime.containerStatus(target.id))?.state === "running",
        signal: ctx.signal,
        pollMs,
      });
      for await (const data of stream) yield create(AgentServiceLogsResponseSchema, { data });
    },
  };
}
