// Starts a real single-member etcd (Debian etcd-server, `etcd` on PATH) for a test: fresh temp
// data dir, free loopback ports, waits for /health, and removes everything on stop().
// It runs under startGuardedProcess (process.ts), so a crashed test run cannot leave an etcd
// behind.

import { join } from "node:path";
import { freePorts, LOOPBACK } from "./ports.ts";
import { retryOnAddressInUse, startGuardedProcess } from "./process.ts";
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
  const { stop } = await startGuardedProcess({
    command: bin,
    args,
    name: "etcd",
    timeoutMs,
    exitedBefore: "becoming healthy",
    notReady: `at ${endpoint} not healthy`,
    ready: async () => {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return res.ok && body.health === "true";
    },
    cleanup: () => removeTempDir(dir),
  });
  return { endpoint, metricsUrl: `${endpoint}/metrics`, dataDir: join(dir, "data"), stop };
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = opts.bin ?? process.env.SKIFF_ETCD_BIN ?? "etcd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return retryOnAddressInUse(() => startOnce(bin, timeoutMs));
}
