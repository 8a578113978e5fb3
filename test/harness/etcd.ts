// Starts a real single-member etcd (Debian etcd-server, `etcd` on PATH) for a test: fresh temp
// data dir, free loopback ports, waits for /health, and removes everything on stop().
//
// etcd is not a direct child: a tiny sh wrapper holds our stdin pipe and SIGTERMs etcd when it
// reads EOF. The pipe closes when this process exits for any reason (even SIGKILL, when no exit
// hook runs), so a crashed test run cannot leave an etcd behind. The wrapper leads its own
// process group, so the hard-stop path can SIGKILL the whole group by its id.

import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { freePorts, LOOPBACK } from "./ports.ts";
import { makeTempDir, removeTempDir } from "./tmp.ts";

export interface EtcdServer {
  /** Client URL, e.g. http://127.0.0.1:40123 (gRPC and HTTP on the same port). */
  endpoint: string;
  /** etcd's Prometheus metrics (etcd_debugging_mvcc_watcher_total, ..._watch_stream_total). */
  metricsUrl: string;
  dataDir: string;
  /** Kills etcd and removes its data dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** etcd binary; default `etcd` from PATH (or $SKIFF_ETCD_BIN). */
  bin?: string;
  /** How long to wait for /health. Default 30s. */
  timeoutMs?: number;
}

const WRAPPER = [
  'exec 3<&0',
  '"$0" "$@" </dev/null 3<&- &',
  "pid=$!",
  '( read _ <&3; kill -TERM "$pid" 2>/dev/null ) &',
  "watchdog=$!",
  'wait "$pid"',
  "code=$?",
  'kill "$watchdog" 2>/dev/null',
  'exit "$code"',
].join("\n");

interface Running {
  child: ChildProcess;
  dir: string;
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
      rmSync(r.dir, { recursive: true, force: true });
    }
  });
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // already gone
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

async function waitHealthy(endpoint: string, child: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before becoming healthy:\n${log()}`);
    }
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      if (res.ok && body.health === "true") return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${endpoint} not healthy after ${timeoutMs}ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startOnce(bin: string, timeoutMs: number): Promise<EtcdServer> {
  const [clientPort, peerPort] = await freePorts(2);
  const dir = makeTempDir("skiff-etcd-");
  const endpoint = `http://${LOOPBACK}:${clientPort}`;
  const peer = `http://${LOOPBACK}:${peerPort}`;
  const name = "skiff-test";
  const args = [
    `--name=${name}`,
    `--data-dir=${join(dir, "data")}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    "--initial-cluster-state=new",
    `--initial-cluster-token=skiff-test-${clientPort}`,
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
  const child = spawn("sh", ["-c", WRAPPER, bin, ...args], {
    detached: true, // own process group: see killGroup
    stdio: ["pipe", "ignore", "pipe"],
  });
  // Keep the last lines of etcd's log for error messages.
  const lines: string[] = [];
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    lines.push(...chunk.split("\n").filter(Boolean));
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  });
  child.stdin?.on("error", () => {}); // EPIPE if the wrapper died first
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();

  const entry: Running = { child, dir };
  running.add(entry);
  installExitHook();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      child.stdin?.end(); // the wrapper SIGTERMs etcd
      const hard = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
      await exited(child);
      clearTimeout(hard);
      killGroup(child, "SIGKILL"); // the watchdog subshell, if it lingers
      running.delete(entry);
      removeTempDir(dir);
    })());

  try {
    await waitHealthy(endpoint, child, () => lines.join("\n"), timeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, metricsUrl: `${endpoint}/metrics`, dataDir: join(dir, "data"), stop };
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = opts.bin ?? process.env.SKIFF_ETCD_BIN ?? "etcd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  let lastErr: unknown;
  // A free port can be taken between picking and binding it: retry with fresh ports.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(bin, timeoutMs);
    } catch (err) {
      lastErr = err;
      if (!/address already in use/i.test(String(err))) throw err;
    }
  }
  throw lastErr;
}
