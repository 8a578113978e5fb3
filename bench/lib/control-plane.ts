// What a benchmark runs against: a real etcd (the test harness's) and an apiserver on it, started
// as a child process (`node cmd/skiff.ts apiserver`, the honest setup: load generator and server
// do not share an event loop or a CPU core's worth of JavaScript) or, when asked or when that is
// not possible, in this process.
import { existsSync } from "node:fs";
import { startApiServer } from "../../internal/apiserver/server.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import type { ApiCredentials } from "../../internal/client/credentials.ts";
import { startEtcd, type EtcdServer } from "../../test/harness/etcd.ts";
import { apiserverTlsArgs, requestTls, testPki, type TestPki } from "../../test/harness/pki.ts";
import { freePort, LOOPBACK } from "../../test/harness/ports.ts";
import { startSkiff, skiffEntry, waitReady } from "./child.ts";
import { onCleanup } from "./cleanup.ts";

/** Keys of objects in etcd start with this (the apiserver's --etcd-prefix). */
export const ETCD_PREFIX = "/skiff";

export interface BenchControlPlane {
  etcd: EtcdServer;
  etcdVersion: string;
  /** apiserver URL (gRPC, Connect, /metrics; TLS). */
  url: string;
  /** The run's PKI (made like `skiff up` makes it) and the admin's credentials. */
  pki: TestPki;
  credentials: ApiCredentials;
  mode: "child process" | "in-process";
  /** Why the mode is what it is, for the report. */
  modeNote: string;
  /** pid of the apiserver process. */
  serverPid: number;
  /** Stops the apiserver now (a child writes its --cpu-prof); cleanup would stop it anyway. */
  stopServer(): Promise<void>;
}

export interface ControlPlaneOptions {
  inProcess: boolean;
  /** Write a V8 CPU profile of the apiserver child into this directory (child mode only). */
  cpuProfDir?: string;
  /** The apiserver's --service-cluster-ip-range (default its own). */
  serviceCidr?: string;
  /** More apiserver flags (child mode only). */
  apiserverArgs?: string[];
  /** More options for the apiserver child's node (e.g. --heapsnapshot-signal) and its environment (child mode only). */
  apiserverProcess?: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv };
}

export async function startBenchControlPlane(opts: ControlPlaneOptions): Promise<BenchControlPlane> {
  const pki = await testPki();
  const credentials = pki.adminCredentials;
  const etcd = await startEtcd();
  onCleanup(() => etcd.stop());
  const etcdVersion = await requestTls(`${etcd.endpoint}/version`, etcd.tls as { ca: string; cert: string; key: string })
    .then((r) => (JSON.parse(r.body) as { etcdserver?: string }).etcdserver ?? "?")
    .catch(() => "?");

  let why = "--in-process given";
  if (!opts.inProcess) {
    if (!existsSync(skiffEntry)) {
      why = "cmd/skiff.ts not found";
    } else {
      try {
        const child = await startChild(etcd.endpoint, pki, opts.cpuProfDir, opts.serviceCidr, opts.apiserverArgs, opts.apiserverProcess);
        return { etcd, etcdVersion, pki, credentials, ...child, mode: "child process", modeNote: "node cmd/skiff.ts apiserver; client and server on separate event loops" };
      } catch (err) {
        why = `starting cmd/skiff.ts apiserver failed: ${String(err).split("\n")[0]}`;
      }
    }
  }
  const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: ETCD_PREFIX, tls: etcd.tls });
  const server = await startApiServer({ store, tls: pki.serving, host: LOOPBACK, port: 0, serviceCidr: opts.serviceCidr });
  let stopping: Promise<void> | undefined;
  const stopServer = () =>
    (stopping ??= (async () => {
      await server.close();
      await store.close();
    })());
  onCleanup(stopServer);
  return {
    etcd,
    etcdVersion,
    pki,
    credentials,
    url: server.url,
    serverPid: process.pid,
    stopServer,
    mode: "in-process",
    modeNote: `${why}; client and server SHARE one event loop, so figures are pessimistic`,
  };
}

async function startChild(etcdEndpoint: string, pki: TestPki, cpuProfDir: string | undefined, serviceCidr?: string, extraArgs: string[] = [], proc: ControlPlaneOptions["apiserverProcess"] = {}): Promise<{ url: string; serverPid: number; stopServer(): Promise<void> }> {
  let lastErr: unknown;
  // A free port can be taken between picking and binding it: retry with another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const daemon = startSkiff(
      [
        "apiserver", "--etcd-servers", etcdEndpoint, "--etcd-prefix", ETCD_PREFIX, "--listen", `${LOOPBACK}:${port}`, "--log-level", "warn",
        ...apiserverTlsArgs(pki),
        ...(serviceCidr ? ["--service-cluster-ip-range", serviceCidr] : []),
        ...extraArgs,
      ],
      { nodeArgs: [...(cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", cpuProfDir] : []), ...(proc.nodeArgs ?? [])], env: proc.env },
    );
    const url = `https://${LOOPBACK}:${port}`;
    try {
      // Generous: on a loaded machine loading and compiling the apiserver alone can take 30 s.
      await waitReady(`${url}/readyz`, daemon, 120_000);
      return { url, serverPid: daemon.pid, stopServer: daemon.stop };
    } catch (err) {
      lastErr = err;
      await daemon.stop();
      if (!/EADDRINUSE|address already in use/i.test(String(err))) break;
    }
  }
  throw lastErr;
}
