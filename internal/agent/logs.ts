// AgentService.Logs: a container's log file, read straight from disk. The runtime appends the
// container's stdout and stderr to ContainerInfo.logPath (<rootDir>/pods/<uid>/logs/<name>/<attempt>.log)
// as timestamped records (../runtime/log-format.ts); the current instance is the newest by
// attempt, `previous` the one before it (the pod worker keeps exactly one terminated instance
// for this).
//
//   file ─► tailOffset (tail_lines) ─► readLogFile (chunks; follow polls) ─► LogRenderer
//        (records → content; since filter; timestamps) ─► response chunks
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { FileHandle } from "node:fs/promises";
import { AgentServiceLogsResponseSchema, type AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Logger } from "../log/log.ts";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import { parseLogRecord, parseRfc3339 } from "../runtime/log-format.ts";
import { concatFiles, openLogFiles, openNextLogFile, rotatedAway, type OpenLogFile, type RandomAccess } from "./log-files.ts";
import { instancesByName } from "./pod-status.ts";
import { sleep } from "../util/sleep.ts";

export interface LogsDeps {
  nodeName: string;
  runtime: ContainerRuntime;
  /** A pod bound to this node, by namespace and name. */
  lookupPod(namespace: string, name: string): Pod | undefined;
  /** How often a followed log is checked for new output. Default 250 ms. */
  pollMs?: number;
  /** Each log request is logged with the apiserver's requestId and the pod's uid. */
  log?: Logger;
}

const CHUNK = 64 * 1024;
const NL = Buffer.from("\n");
/** Enough bytes of a record to read its tag: "<time> <stream> <F|P> ". */
const HEADER = 64;

/** Whether a record (its first HEADER bytes suffice) ends a line: F, or a line not in the format. */
function endsLine(head: Uint8Array): boolean {
  const nl = head.indexOf(0x0a);
  return parseLogRecord(nl >= 0 ? head.subarray(0, nl) : head)?.full ?? true;
}

/**
 * Where the last `lines` lines of the log start. Lines end at F records; P records continue
 * them; an unfinished line at the end counts as one (records are file lines: "\n"-terminated).
 */
export async function tailOffset(fh: RandomAccess, lines: number): Promise<number> {
  const size = (await fh.stat()).size;
  if (lines <= 0) return size;
  const buf = Buffer.alloc(CHUNK);
  const head = Buffer.alloc(HEADER);
  let needed = 0; // F records to pass, from the end: lines + 1 when the last line is finished
  let passed = 0;
  // Called for each record [start, end), last first; true when the tail begins at its end.
  const record = async (start: number, end: number, bufStart: number, bytes: number): Promise<boolean> => {
    let h: Uint8Array;
    if (start + HEADER <= bufStart + bytes || end <= bufStart + bytes) h = buf.subarray(start - bufStart, Math.min(end, start + HEADER) - bufStart);
    else h = head.subarray(0, (await fh.read(head, 0, Math.min(HEADER, end - start), start)).bytesRead);
    const full = endsLine(h);
    if (needed === 0) needed = full ? lines + 1 : lines;
    return full && ++passed === needed;
  };
  let recordEnd = size;
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - CHUNK);
    const { bytesRead } = await fh.read(buf, 0, end - start, start);
    for (let i = bytesRead - 1; i >= 0; i--) {
      const at = start + i;
      if (buf[i] !== 0x0a || at === size - 1) continue;
      if (await record(at + 1, recordEnd, start, bytesRead)) return recordEnd;
      recordEnd = at + 1;
    }
    end = start;
    if (end === 0 && recordEnd > 0 && (await record(0, recordEnd, start, bytesRead))) return recordEnd;
  }
  return 0;
}

/**
 * Turns log file bytes into what the client sees: each record's content (F: with its newline),
 * lines older than `sinceNs` left out, the line's time in front with `timestamps`. A line is the
 * records of one stream up to an F; its first record decides (kubelet shows the same time).
 * Lines not in the format are shown as they are, but never as newer than anything.
 */
export class LogRenderer {
  private carry: Uint8Array = Buffer.alloc(0);
  /** Per stream, while a line is unfinished (after a P record): whether it is shown. */
  private readonly open = new Map<string, boolean>();
  private readonly sinceNs: bigint | undefined;
  private readonly timestamps: boolean;

  constructor(opts: { sinceNs?: bigint; timestamps?: boolean } = {}) {
    this.sinceNs = opts.sinceNs;
    this.timestamps = opts.timestamps ?? false;
  }

  /** Output for the whole records in `chunk` (a record cut at the chunk's end waits for the next). */
  push(chunk: Uint8Array): Buffer {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: Uint8Array[] = [];
    let at = 0;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, at)) {
      this.record(data.subarray(at, nl), out);
      at = nl + 1;
    }
    this.carry = data.subarray(at);
    return Buffer.concat(out);
  }

  /** The end of the file: a last record without its newline (a file cut short) is shown too. */
  end(): Buffer {
    const out: Uint8Array[] = [];
    if (this.carry.length > 0) this.record(this.carry, out);
    this.carry = Buffer.alloc(0);
    return Buffer.concat(out);
  }

  private lastPrefix = { time: "", bytes: Buffer.alloc(0) };

  /** "<time> ", one buffer per distinct time (the logger stamps a whole read with one). */
  private prefix(time: string): Buffer {
    if (this.lastPrefix.time !== time) this.lastPrefix = { time, bytes: Buffer.from(`${time} `) };
    return this.lastPrefix.bytes;
  }

  private record(line: Uint8Array, out: Uint8Array[]): void {
    const r = parseLogRecord(line);
    if (!r) {
      if (this.sinceNs === undefined) out.push(line, NL);
      return;
    }
    let shown = this.open.get(r.stream);
    if (shown === undefined) {
      shown = this.sinceNs === undefined || r.timeNs >= this.sinceNs;
      if (shown && this.timestamps) out.push(this.prefix(r.time));
    }
    if (shown) {
      out.push(r.content);
      if (r.full) out.push(NL);
    }
    if (r.full) this.open.delete(r.stream);
    else this.open.set(r.stream, shown);
  }
}

export interface StreamOptions {
  tailLines?: number;
  /** Only lines written at or after this time (nanoseconds since the epoch). */
  sinceNs?: bigint;
  timestamps?: boolean;
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

/** Where reading starts: the first file and offset of the last tailLines lines, or the very start. */
async function startOf(files: OpenLogFile[], tailLines: number | undefined): Promise<{ index: number; offset: number }> {
  if (tailLines === undefined || files.length === 0) return { index: 0, offset: 0 };
  const all = await concatFiles(files.map((f) => f.fh));
  return all.locate(await tailOffset(all, tailLines));
}

/**
 * The log's bytes from the start of its oldest file (or the last tailLines lines), then, with
 * follow, what is appended — across rotations (log-files.ts): when the current file is renamed
 * away, the rest of it is read, then the next file from its start.
 */
async function* readLogFile(path: string, opts: StreamOptions): AsyncGenerator<Uint8Array> {
  const files = await openLogFiles(path);
  let cur: OpenLogFile | undefined;
  try {
    const start = await startOf(files, opts.tailLines);
    for (const f of files.splice(0, start.index)) await f.fh.close();
    const pos = { offset: start.offset };
    for (cur = files.shift(); cur && files.length > 0; cur = files.shift()) {
      yield* readToEnd(cur.fh, pos);
      await cur.fh.close();
      pos.offset = 0;
    }
    /** Reads what is there; true when it moved on to a newer file (read again at once). */
    const readOn = async function* (): AsyncGenerator<Uint8Array, boolean> {
      if (!cur) {
        cur = await openLogFiles(path).then(async (fs) => {
          for (const f of fs.slice(1)) await f.fh.close(); // the oldest first
          return fs[0];
        });
        pos.offset = 0;
        if (!cur) return false;
      }
      yield* readToEnd(cur.fh, pos);
      if (!(await rotatedAway(path, cur.ino))) return false;
      yield* readToEnd(cur.fh, pos); // the logger is done with it: what it wrote last
      const next = await openNextLogFile(path, cur.ino);
      if (!next) return false;
      await cur.fh.close();
      cur = next;
      pos.offset = 0;
      return true;
    };
    for (;;) {
      if (!opts.follow || opts.signal.aborted) {
        if (cur) yield* readToEnd(cur.fh, pos);
        return;
      }
      if (yield* readOn()) continue;
      if (!(await opts.stillWriting())) {
        // The runtime's log copier may still be flushing the last output: one more read after a pause.
        await sleep(opts.pollMs, opts.signal);
        for (let more = true; more; ) more = yield* readOn();
        return;
      }
      await sleep(opts.pollMs, opts.signal);
      if (opts.signal.aborted) return;
    }
  } finally {
    await cur?.fh.close();
    for (const f of files) await f.fh.close();
  }
}

/** What the client sees of a log file: readLogFile through a LogRenderer, no empty chunks. */
export async function* streamLogFile(path: string, opts: StreamOptions): AsyncGenerator<Uint8Array> {
  const render = new LogRenderer(opts);
  for await (const chunk of readLogFile(path, opts)) {
    const out = render.push(chunk);
    if (out.length > 0) yield out;
  }
  const rest = render.end();
  if (rest.length > 0) yield rest;
}

/** since_seconds or since_time as nanoseconds since the epoch; InvalidArgument naming the field. */
export function sinceOf(req: { sinceSeconds?: bigint; sinceTime: string }, nowMs = Date.now()): bigint | undefined {
  if (req.sinceSeconds !== undefined && req.sinceTime !== "") {
    throw new ConnectError("since_time: at most one of since_seconds and since_time may be set", Code.InvalidArgument);
  }
  if (req.sinceSeconds !== undefined) {
    if (req.sinceSeconds <= 0n) throw new ConnectError(`since_seconds: must be greater than 0, got ${req.sinceSeconds}`, Code.InvalidArgument);
    return (BigInt(nowMs) - req.sinceSeconds * 1000n) * 1_000_000n;
  }
  if (req.sinceTime === "") return undefined;
  const t = parseRfc3339(req.sinceTime);
  if (t === undefined) {
    throw new ConnectError(`since_time: must be an RFC 3339 time such as 2024-05-01T10:00:00Z, got "${req.sinceTime}"`, Code.InvalidArgument);
  }
  return t;
}

export function createLogsService(deps: LogsDeps): ServiceImpl<typeof AgentService> {
  const pollMs = deps.pollMs ?? 250;
  return {
    async *logs(req, ctx) {
      if (req.pod === "") throw new ConnectError("pod: required", Code.InvalidArgument);
      if (req.tailLines !== undefined && req.tailLines < 0n) throw new ConnectError("tail_lines: must be >= 0", Code.InvalidArgument);
      const sinceNs = sinceOf(req);
      if (req.limitBytes !== undefined && req.limitBytes <= 0n) {
        throw new ConnectError(`limit_bytes: must be greater than 0, got ${req.limitBytes}`, Code.InvalidArgument);
      }
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
      deps.log?.info({ requestId: ctx.requestHeader.get("x-request-id") ?? "", podUid: uid, pod: `${namespace}/${req.pod}`, container: name, follow: req.follow }, "serving a container log");
      const stream = streamLogFile(target.logPath, {
        tailLines: req.tailLines === undefined ? undefined : Number(req.tailLines),
        sinceNs,
        timestamps: req.timestamps,
        follow: req.follow && !req.previous,
        stillWriting: async () => (await deps.runtime.containerStatus(target.id))?.state === "running",
        signal: ctx.signal,
        pollMs,
      });
      let left = req.limitBytes === undefined ? Infinity : Number(req.limitBytes);
      for await (const data of stream) {
        const part = data.length > left ? data.subarray(0, left) : data;
        left -= part.length;
        yield create(AgentServiceLogsResponseSchema, { data: part });
        if (left <= 0) return; // ends the file stream (and a follow) too
      }
    },
  };
}
