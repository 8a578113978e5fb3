// Termination messages (terminationMessagePath, terminationMessagePolicy): every container
// instance gets its own empty file on the node, bind-mounted at its terminationMessagePath
// (default /dev/termination-log). When the instance has exited, the agent reads at most 4 KiB of
// it into the terminated state's `message`; with FallbackToLogsOnError, an empty file and a
// failure, the tail of the container's log (80 lines, 2 KiB at most) instead, as the kubelet does.
import { Buffer } from "node:buffer";
import * as fs from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Container } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { parseLogRecord } from "../runtime/log-format.ts";
import type { ContainerInfo, Mount } from "../runtime/runtime.ts";
import { asyncFileOps, fileOpsFor, type FileOps } from "./file-ops.ts";
import { podDir } from "./pod-files.ts";

export const DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log";
export const MAX_TERMINATION_MESSAGE_BYTES = 4096;
export const FALLBACK_LOG_LINES = 80;
export const FALLBACK_LOG_BYTES = 2048;
/** How much of the log's end is read to find its last lines. */
const LOG_TAIL_READ_BYTES = 64 * 1024;

/** The node's file behind one container instance's terminationMessagePath. */
export function terminationLogPath(rootDir: string, uid: string, container: string, attempt: number): string {
  return join(podDir(rootDir, uid), "termination", container, String(attempt));
}

/** The bind mount of that file at the container's terminationMessagePath. */
export function terminationMount(c: Container, hostPath: string): Mount {
  return { hostPath, containerPath: c.terminationMessagePath || DEFAULT_TERMINATION_MESSAGE_PATH, readOnly: false };
}

/**
 * A container instance's files before it is created: its log's directory and its termination-log
 * file. `memoryBacked`: the data dir is on a memory file system, where these few calls are made
 * synchronously (file-ops.ts).
 */
export async function prepareInstanceFiles(logPath: string, terminationPath: string, memoryBacked = false): Promise<void> {
  const ops = fileOpsFor(memoryBacked, 0);
  await ops.mkdir(dirname(logPath), { recursive: true });
  await prepareTerminationLog(terminationPath, ops);
}

/** Makes the instance's file anew, empty and writable by any user the container runs as. */
export async function prepareTerminationLog(path: string, ops: FileOps = asyncFileOps): Promise<void> {
  await ops.mkdir(dirname(path), { recursive: true });
  await ops.writeFile(path, "", { mode: 0o666 });
  // writeFile's mode is masked by the umask (and a file left by an earlier run keeps its own).
  await ops.chmod(path, 0o666);
}

/** At most `max` bytes from `start` of a file; empty when it is missing. */
async function readBounded(path: string, max: number, fromEnd: boolean): Promise<Buffer> {
  let fh;
  try {
    fh = await fs.open(path, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = (await fh.stat()).size;
    const start = fromEnd ? Math.max(0, size - max) : 0;
    const buf = Buffer.alloc(Math.min(max, size - start));
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The last lines of a container's log (CRI format) as the container wrote them. */
async function logTail(logPath: string): Promise<string> {
  const raw = await readBounded(logPath, LOG_TAIL_READ_BYTES, true);
  const lines = raw.toString("utf8").split("\n");
  const out: string[] = [];
  let partial = "";
  for (const line of lines) {
    const rec = parseLogRecord(Buffer.from(line));
    if (!rec) continue;
    partial += Buffer.from(rec.content).toString("utf8");
    if (rec.full) {
      out.push(partial);
      partial = "";
    }
  }
  if (partial) out.push(partial);
  const text = out.slice(-FALLBACK_LOG_LINES).join("\n");
  const bytes = Buffer.from(text);
  return bytes.length <= FALLBACK_LOG_BYTES ? text : bytes.subarray(bytes.length - FALLBACK_LOG_BYTES).toString("utf8");
}

/** The message of an exited instance: its file, or (FallbackToLogsOnError, a failure) its log. */
export async function readTerminationMessage(c: Container, info: ContainerInfo, filePath: string): Promise<string> {
  const file = (await readBounded(filePath, MAX_TERMINATION_MESSAGE_BYTES, false)).toString("utf8");
  if (file !== "") return file;
  if (c.terminationMessagePolicy === "FallbackToLogsOnError" && info.exitCode !== undefined && info.exitCode !== 0) return logTail(info.logPath);
  return "";
}
