// Runs a server process for a test (etcd, docker-registry, containerd) so that it dies with the
// test process, however that ends.
//
// The server is not a direct child: a tiny sh wrapper holds our stdin pipe and SIGTERMs the
// server when it reads EOF. The pipe closes when this process exits for any reason (even
// SIGKILL, when no exit hook runs), so a crashed test run cannot leave a server behind. The
// wrapper leads its own process group, so the hard-stop paths can SIGKILL the whole group.

import { spawn, type ChildProcess } from "node:child_process";

export interface GuardedProcessOptions {
  /** The server binary (a path, or a name on PATH) and its arguments. */
  command: string;
  args: readonly string[];
  /** The server's environment; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** For error messages, e.g. "etcd". */
  name: string;
  /** Polled every 50ms until it resolves true; a throw counts as "not yet". */
  ready: () => Promise<boolean>;
  timeoutMs: number;
  /** Error wording: `${name} exited (1) before ${exitedBefore}` (default "becoming ready"). */
  exitedBefore?: string;
  /** Error wording: `${name} ${notReady} after ${timeoutMs}ms` (default "not ready"). */
  notReady?: string;
  /**
   * Synchronous clean-up once the server is gone (its temp dir, ...). Runs in stop(), where a
   * throw rejects stop(), and in the exit hook, where a throw is ignored.
   */
  cleanup?: () => void;
}

export interface GuardedProcess {
  /** The sh wrapper (the server is its child). */
  child: ChildProcess;
  /** SIGTERMs the server (SIGKILLs its group after 10s), then runs cleanup. Safe to call twice. */
  stop(): Promise<void>;
  /** The server's last 40 stderr lines. */
  log(): string;
}

const WRAPPER = [
  "exec 3<&0",
  '"$0" "$@" </dev/null 3<&- &',
  "pid=$!",
  '( read _ <&3; kill -TERM "$pid" 2>/dev/null ) &',
  "watchdog=$!",
  'wait "$pid"',
  "code=$?",
  'kill "$watchdog" 2>/dev/null',
  'exit "$code"',
].join("\n");

const LOG_LINES = 40;
const HARD_STOP_MS = 10_000;

interface Running {
  child: ChildProcess;
  cleanup?: () => void;
}
const running = new Set<Running>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Only synchronous work is possible here.
  process.on("exit", () => {
    for (const r of running) {
      killGroup(r.child, "SIGKILL");
      try {
        r.cleanup?.();
      } catch {
        // best effort; the next run's sweep of stale temp dirs retries
      }
    }
  });
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || hasExited(child)) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

async function waitReady(child: ChildProcess, opts: GuardedProcessOptions, log: () => string): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (hasExited(child)) {
      const code = child.exitCode ?? child.signalCode;
      throw new Error(`${opts.name} exited (${code}) before ${opts.exitedBefore ?? "becoming ready"}:\n${log()}`);
    }
    try {
      if (await opts.ready()) return;
    } catch {
      // not serving yet
    }
    if (Date.now() > deadline) {
      throw new Error(`${opts.name} ${opts.notReady ?? "not ready"} after ${opts.timeoutMs}ms:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts `command` under the guard wrapper and waits until `ready()`. If it exits first or is
 * not ready in time, stops it (running cleanup) and throws with its last log lines.
 */
export async function startGuardedProcess(opts: GuardedProcessOptions): Promise<GuardedProcess> {
  const child = spawn("sh", ["-c", WRAPPER, opts.command, ...opts.args], {
    detached: true, // own process group: see killGroup
    env: opts.env,
    stdio: ["pipe", "ignore", "pipe"],
  });
  // Keep the last lines of the server's log for error messages.
  const lines: string[] = [];
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    lines.push(...chunk.split("\n").filter(Boolean));
    if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES);
  });
  const log = () => lines.join("\n");
  child.stdin?.on("error", () => {}); // EPIPE if the wrapper died first
  // A running server must not keep the test process alive: the pipe closing is what stops it.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  const entry: Running = { child, cleanup: opts.cleanup };
  running.add(entry);
  installExitHook();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      child.stdin?.end(); // the wrapper SIGTERMs the server
      const hard = setTimeout(() => killGroup(child, "SIGKILL"), HARD_STOP_MS);
      await exited(child);
      clearTimeout(hard);
      killGroup(child, "SIGKILL"); // the watchdog subshell, if it lingers
      running.delete(entry);
      opts.cleanup?.();
    })());

  try {
    await waitReady(child, opts, log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, stop, log };
}

/**
 * Runs `start` up to 3 times while it fails with "address already in use": a free port can be
 * taken between picking it (ports.ts) and the server binding it, so retry with fresh ports.
 */
export async function retryOnAddressInUse<T>(start: () => Promise<T>): Promise<T> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start();
    } catch (err) {
      lastErr = err;
      if (!/address already in use/i.test(String(err))) throw err;
    }
  }
  throw lastErr;
}
