// The agent's end of the loggers' reports: a FIFO every container logger (cri-logger.pl) writes
// a line to when a write to its log fails, keeps failing, or works again. A FIFO, not a file:
// reports matter most when the disk is full. Each report is one write under PIPE_BUF, so
// loggers never interleave. A logger opens it non-blocking per report: while the agent is down
// its reports are dropped, and the marker record the logger writes into the log remains.
import { execFileSync } from "node:child_process";
import { constants, lstatSync, openSync, rmSync } from "node:fs";
import net from "node:net";

export interface LoggerReport {
  /** The container log the report is about (its current file). */
  logPath: string;
  message: string;
}

export interface LoggerReports {
  /** The FIFO to give the loggers (ContainerLogOptions.reportPath). */
  readonly path: string;
  close(): void;
}

/** "<log path>\t<message>", the logger's report line. */
export function parseLoggerReport(line: string): LoggerReport | undefined {
  const tab = line.indexOf("\t");
  if (tab <= 0) return undefined;
  return { logPath: line.slice(0, tab), message: line.slice(tab + 1) };
}

/** Makes (or reuses) the FIFO at `path` and calls onReport for each report line. */
export function createLoggerReports(path: string, onReport: (r: LoggerReport) => void): LoggerReports {
  let isFifo = false;
  try {
    isFifo = lstatSync(path).isFIFO();
    if (!isFifo) rmSync(path, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  // Node has no mkfifo; coreutils does. Owner-only: reports name the node's log paths.
  if (!isFifo) execFileSync("mkfifo", ["-m", "0600", path]);
  // Read-write, so the stream never sees end-of-file between loggers' writes.
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const socket = new net.Socket({ fd, readable: true, writable: false });
  let carry = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    const lines = (carry + chunk).split("\n");
    carry = lines.pop() ?? "";
    if (carry.length > 8192) carry = ""; // not a report: reports are one short line
    for (const line of lines) {
      const r = parseLoggerReport(line);
      if (r) onReport(r);
    }
  });
  socket.on("error", () => {}); // closed under us at shutdown
  return {
    path,
    close: () => socket.destroy(),
  };
}
