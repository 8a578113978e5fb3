// Runs a host program (ip, iptables, a CNI plugin) to completion: optional stdin, an explicit
// environment, a hard timeout (SIGKILL), and stdout/stderr captured as text.

import { spawn } from "node:child_process";

export interface RunOptions {
  stdin?: string;
  /** The whole environment of the child (not merged with ours). Default: our environment. */
  env?: NodeJS.ProcessEnv;
  /** Kill the child after this long. Default 60 s. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  /** Set when the child died of a signal (including our timeout's SIGKILL). */
  signal?: NodeJS.Signals;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Adds the sbin directories (where ip and iptables live) to PATH if missing. */
export function sbinPath(path = process.env.PATH ?? ""): string {
  const parts = path.split(":").filter(Boolean);
  for (const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
    if (!parts.includes(dir)) parts.push(dir);
  }
  return parts.join(":");
}

export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? -1,
        signal: signal ?? undefined,
        timedOut,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    // A child that exits without reading its stdin makes the write fail with EPIPE: not our error.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.stdin ?? "");
  });
}

/** Runs and throws `${what}: <stderr>` unless it exits 0. */
export async function runChecked(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(file, args, { env: { ...process.env, PATH: sbinPath() }, ...opts });
  if (r.code !== 0) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 60_000} ms` : (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`);
    throw new Error(`${[file, ...args].join(" ")}: ${why}`);
  }
  return r;
}
