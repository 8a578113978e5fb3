// Starts `node cmd/skiff.ts <daemon> …` (or a benchmark's own script, startNodeScript) as a child
// process for a benchmark, so that the server and the load generator do not share one event loop,
// and stops it again (SIGTERM, then SIGKILL). The child gets exit-with-parent.ts preloaded: it
// also goes away when this process dies.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { onCleanup } from "./cleanup.ts";
import { getUrl } from "./prom.ts";

export interface Daemon {
  pid: number;
  /** The child process itself (for IPC when started with `ipc: true`). */
  child: ChildProcess;
  /** The last lines the daemon wrote to stdout/stderr (for error messages). */
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

export const skiffEntry = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));
const preload = new URL("./exit-with-parent.ts", import.meta.url).href;

export interface StartDaemonOptions {
  /** Extra options for node itself, e.g. ["--cpu-prof", "--cpu-prof-dir", dir]. */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Open an IPC channel (child.send / process.on("message") in the child). */
  ipc?: boolean;
}

export function startSkiff(args: string[], opts: StartDaemonOptions = {}): Daemon {
  return startNodeScript(skiffEntry, args, opts);
}

/** Runs `node <entry> …args` (a .ts file of the repository) the way startSkiff runs cmd/skiff.ts. */
export function startNodeScript(entry: string, args: string[], opts: StartDaemonOptions = {}): Daemon {
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), "--import", preload, entry, ...args], {
    stdio: opts.ipc ? ["pipe", "pipe", "pipe", "ipc"] : ["pipe", "pipe", "pipe"],
    env: { ...process.env, SKIFF_LOG_FORMAT: "json", ...opts.env },
  });
  const lines: string[] = [];
  const keep = (chunk: string) => {
    lines.push(...chunk.split("\n").filter(Boolean));
    if (lines.length > 50) lines.splice(0, lines.length - 50);
  };
  child.stdout?.setEncoding("utf8").on("data", keep);
  child.stderr?.setEncoding("utf8").on("data", keep);
  child.stdin?.on("error", () => {}); // EPIPE when the child is already gone

  const hasExited = () => child.exitCode !== null || child.signalCode !== null;
  const exitedPromise = new Promise<void>((resolve) => {
    if (hasExited()) resolve();
    else child.once("exit", () => resolve());
  });
  // Only synchronous work is possible in an exit hook: a last resort if stop() never ran.
  const onExit = () => {
    if (!hasExited()) child.kill("SIGKILL");
  };
  process.on("exit", onExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (!hasExited()) child.kill("SIGTERM");
      const hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exitedPromise;
      clearTimeout(hard);
      child.stdin?.destroy();
      process.off("exit", onExit);
    })());
  onCleanup(stop);

  return { pid: child.pid ?? -1, child, output: () => lines.join("\n"), exited: hasExited, stop };
}

/** Polls `url` until it answers 200, failing early if the daemon exits. */
export async function waitReady(url: string, daemon: Daemon, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemon.exited()) throw new Error(`daemon exited before ${url} was ready:\n${daemon.output()}`);
    try {
      if ((await getUrl(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms:\n${daemon.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
