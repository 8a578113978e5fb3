// Starts a real single-member etcd (Debian etcd-server, `etcd` on PATH) for a test: fresh temp
// data dir, free loopback ports, clients over TLS with client-certificate auth (certificates from
// the test PKI, like `skiff up`'s etcd), /health and /metrics on a separate plain loopback port
// (as kubeadm sets etcd up), waits for /health, and removes everything on stop().
// It runs under startGuardedProcess (process.ts), so a crashed test run cannot leave an etcd
// behind.

import { join } from "node:path";
import { testPki } from "../../internal/pki/testing.ts";
import type { EtcdTls } from "../../internal/storage/etcd.ts";
import { freePorts, LOOPBACK } from "./ports.ts";
import { retryOnAddressInUse, startGuardedProcess } from "./process.ts";
import { makeTempDir, removeTempDir } from "./tmp.ts";

export interface EtcdServer {
  /** Client URL, e.g. https://127.0.0.1:40123 (gRPC over TLS, client certificate required). */
  endpoint: string;
  /** The apiserver's client credentials for it (createEtcdStore's `tls`). */
  tls: EtcdTls;
  /** etcd's Prometheus metrics (etcd_debugging_mvcc_watcher_total, ..._watch_stream_total), plain HTTP on loopback. */
  metricsUrl: string;
  /** etcd's /health, plain HTTP on loopback. */
  healthUrl: string;
  dataDir: string;
  /** The member's name and peer URL (what a snapshot restore for this etcd must be given). */
  memberName: string;
  peerUrl: string;
  /** Kills etcd and removes its data dir. Safe to call twice. */
  stop(): Promise<void>;
  /** kill -9 of etcd, keeping its data dir and ports (an outage; `restart()` ends it). */
  kill(): Promise<void>;
  /** Starts etcd again after kill(), same data, ports and certificates; resolves once healthy. */
  restart(): Promise<void>;
}

export interface StartEtcdOptions {
  /** etcd binary; default `etcd` from PATH (or $SKIFF_ETCD_BIN). */
  bin?: string;
  /** How long to wait for /health. Default 30s. */
  timeoutMs?: number;
}

async function startOnce(bin: string, timeoutMs: number): Promise<EtcdServer> {
  const [clientPort, peerPort, metricsPort] = await freePorts(3);
  const pki = await testPki();
  const dir = makeTempDir("skiff-etcd-");
  const endpoint = `https://${LOOPBACK}:${clientPort}`;
  const metricsBase = `http://${LOOPBACK}:${metricsPort}`;
  const peer = `http://${LOOPBACK}:${peerPort}`;
  const name = "skiff-test";
  const args = [
    `--name=${name}`,
    `--data-dir=${join(dir, "data")}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--cert-file=${pki.files("etcd-server").cert}`,
    `--key-file=${pki.files("etcd-server").key}`,
    `--trusted-ca-file=${pki.files("ca").cert}`,
    "--client-cert-auth",
    `--listen-metrics-urls=${metricsBase}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    "--initial-cluster-state=new",
    `--initial-cluster-token=skiff-test-${clientPort}`,
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
  // While killed on purpose the data dir stays; any other end of the process removes it.
  let outage = false;
  const launch = () =>
    startGuardedProcess({
      command: bin,
      args, // on a restart etcd finds its data dir and ignores the --initial-* flags
      name: "etcd",
      timeoutMs,
      exitedBefore: "becoming healthy",
      notReady: `at ${endpoint} not healthy`,
      ready: async () => {
        const res = await fetch(`${metricsBase}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        return res.ok && body.health === "true";
      },
      cleanup: () => {
        if (!outage) removeTempDir(dir);
      },
    });
  let proc = await launch();
  const tls = { ca: pki.ca.cert, cert: pki.apiserverClient.cert, key: pki.apiserverClient.key };
  return {
    endpoint,
    tls,
    metricsUrl: `${metricsBase}/metrics`,
    healthUrl: `${metricsBase}/health`,
    dataDir: join(dir, "data"),
    memberName: name,
    peerUrl: peer,
    stop: async () => {
      outage = false;
      await proc.stop();
      removeTempDir(dir);
    },
    async kill() {
      outage = true;
      if (proc.child.pid !== undefined) process.kill(-proc.child.pid, "SIGKILL");
      await proc.stop(); // reaps it; cleanup keeps the data dir
    },
    async restart() {
      proc = await launch();
      outage = false;
    },
  };
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = opts.bin ?? process.env.SKIFF_ETCD_BIN ?? "etcd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return retryOnAddressInUse(() => startOnce(bin, timeoutMs));
}
