// Where a task's stdout and stderr go. containerd 1.6's `file://` stdio is lossy: the shim copies
// both streams into one file, and when the stdout copy ends first it closes the file under the
// stderr copy, so the last stderr lines of an exiting process (a crash message!) can be lost.
// So we use `binary://`: the shim starts a logger with the stdout pipe on fd 3, stderr on fd 4 and
// a "ready" pipe on fd 5 (closed when ready), and on process delete SIGTERMs it and waits for it.
// Loggers ignore SIGTERM and run until both pipes close: so once Tasks/Delete or
// Tasks/DeleteProcess has returned, every byte is in the file. A logger is owned by the shim, so
// it keeps logging while the agent restarts. The shim passes query parameters as arguments
// (`?a=b` → `perl a b`), in Go map order: so one parameter only — the script's path and one
// argument holding all its settings.
//
// Two loggers:
// - containerLoggerUri: a container's log in the CRI format (../log-format.ts), both streams in
//   one file, each line stamped with the time the logger read it, rotated by size, failed writes
//   reported. One perl process per container running logger/cri-logger.pl (perl-base is
//   Essential on Debian; see logger/README.md).
// - rawLoggerUri: exec output, byte for byte, to two files: `sh` and two `cat`s.
import { fileURLToPath } from "node:url";
import { MAX_LOG_LINE } from "../log-format.ts";

const SHELL = "/bin/sh";
const CAT = "/bin/cat";
const PERL = "/usr/bin/perl";

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A stdio URI that appends stdout to `stdoutPath` and stderr to `stderrPath`, raw bytes. */
export function rawLoggerUri(stdoutPath: string, stderrPath: string): string {
  const script = [
    "trap '' TERM",
    `${CAT} <&3 >>${shellQuote(stdoutPath)} 3<&- 4<&- 5>&- &`,
    `${CAT} <&4 >>${shellQuote(stderrPath)} 3<&- 4<&- 5>&- &`,
    "exec 3<&- 4<&- 5>&-",
    "wait",
  ].join("\n");
  return `binary://${SHELL}?-c=${encodeURIComponent(script)}`;
}

/** clock_gettime's syscall number per Node architecture (the logger runs on the agent's machine). */
const CLOCK_GETTIME: Partial<Record<string, number>> = { x64: 228, arm64: 113, riscv64: 113, loong64: 113, ppc64: 246, s390x: 260, ia32: 265, arm: 263 };

/** How long an unfinished line waits for its end before what there is is written as a P record. */
const PARTIAL_FLUSH_SECONDS = 0.5;

/** The CRI logger, a file of its own (checked with `perl -cw` by logger/cri-logger.test.ts). */
export const CRI_LOGGER_SCRIPT = fileURLToPath(new URL("./logger/cri-logger.pl", import.meta.url));

/** Rotation of a container's log, and where the logger reports failed writes. */
export interface ContainerLogOptions {
  /** Bytes per file before it is rotated (kubelet's containerLogMaxSize). 0: never rotated. */
  maxSizeBytes: number;
  /** Files kept per container, the current one included (kubelet's containerLogMaxFiles, >= 2). */
  maxFiles: number;
  /** A FIFO the agent reads (logger/reports.ts); unset: the logger's stderr. */
  reportPath?: string;
}

/** A logger setting's value: "%" and " " escaped (settings are space-separated), the rest as is for `ps`. */
function settingValue(v: string | number): string {
  return String(v).replace(/[% ]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** A stdio URI that appends the container's stdout and stderr to `logPath` in the CRI log format, rotated. */
export function containerLoggerUri(logPath: string, opts: ContainerLogOptions = { maxSizeBytes: 0, maxFiles: 0 }): string {
  const settings: Record<string, string | number> = {
    log: logPath, // first, so `ps` shows whose logger it is
    "max-size": opts.maxSizeBytes,
    "max-files": opts.maxFiles,
    "clock-gettime": CLOCK_GETTIME[process.arch] ?? 0,
    "max-line": MAX_LOG_LINE,
    "partial-flush": PARTIAL_FLUSH_SECONDS,
  };
  if (opts.reportPath) settings.report = opts.reportPath;
  const arg = Object.entries(settings).map(([k, v]) => `${k}=${settingValue(v)}`).join(" ");
  // One query parameter: the shim runs `perl <key> <value>`, and passes several in random order.
  return `binary://${PERL}?${encodeURIComponent(CRI_LOGGER_SCRIPT)}=${encodeURIComponent(arg)}`;
}
