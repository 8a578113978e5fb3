// The container log file format every runtime writes (ContainerConfig.logPath) and the agent's
// log service reads: the CRI format kubelet users know, one record per line of the file,
//
//   2024-05-01T10:00:00.123456789Z stdout F hello
//   <RFC 3339 time, UTC> <stdout|stderr> <F|P> <content>
//
// F: the content is a whole line (its newline is not stored); P: a piece of a line that was cut
// (longer than MAX_LOG_LINE, unfinished when the stream ended, or unfinished for a while): the
// stream's next record continues it.

/** Longest content in one record; a longer line becomes P records (as containerd's CRI default). */
export const MAX_LOG_LINE = 16 * 1024;

export type LogStream = "stdout" | "stderr";

export interface LogRecord {
  /** The time as written (RFC 3339). */
  time: string;
  /** Nanoseconds since the epoch. */
  timeNs: bigint;
  stream: LogStream;
  /** False for a P record. */
  full: boolean;
  content: Uint8Array;
}

const SPACE = 0x20;
const STDOUT = Buffer.from("stdout");
const STDERR = Buffer.from("stderr");

// The logger stamps all records of one read with one time: parse each distinct time once.
let lastTime: { bytes: Buffer; text: string; ns: bigint } | undefined;

function timeOf(bytes: Uint8Array): { text: string; ns: bigint } | undefined {
  if (lastTime && lastTime.bytes.equals(bytes)) return lastTime;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
  const ns = parseRfc3339(text);
  if (ns === undefined) return undefined;
  lastTime = { bytes: Buffer.from(bytes), text, ns };
  return lastTime;
}

/** One record (one file line, without its newline); undefined when it is not in the format. */
export function parseLogRecord(line: Uint8Array): LogRecord | undefined {
  const sp1 = line.indexOf(SPACE);
  if (sp1 < 0) return undefined;
  const sp2 = sp1 + 7;
  if (line[sp2] !== SPACE) return undefined;
  const name = Buffer.from(line.buffer, line.byteOffset + sp1 + 1, 6);
  const stream = name.equals(STDOUT) ? "stdout" : name.equals(STDERR) ? "stderr" : undefined;
  if (!stream) return undefined;
  const tag = line[sp2 + 1];
  if ((tag !== 0x46 && tag !== 0x50) || (line.length > sp2 + 2 && line[sp2 + 2] !== SPACE)) return undefined; // F, P
  const time = timeOf(line.subarray(0, sp1));
  if (!time) return undefined;
  return { time: time.text, timeNs: time.ns, stream, full: tag === 0x46, content: line.subarray(Math.min(line.length, sp2 + 3)) };
}

/** A record as a file line (with its newline). */
export function formatLogRecord(time: Date | string, stream: LogStream, full: boolean, content: string | Uint8Array): Buffer {
  const t = typeof time === "string" ? time : time.toISOString();
  return Buffer.concat([Buffer.from(`${t} ${stream} ${full ? "F" : "P"} `), Buffer.from(content), Buffer.from("\n")]);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** An RFC 3339 time ("2024-05-01T10:00:00Z", "…:00.5+02:00") in nanoseconds since the epoch. */
export function parseRfc3339(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(ms);
  // Date.UTC rolls 02-30 over to 03-02: a day, hour… out of range is not a time.
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (!m[8]) {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = BigInt((m[7] ?? "").padEnd(9, "0"));
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1_000_000n + fraction;
}
