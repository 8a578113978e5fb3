// Runs Debian's etcd as a child of `skiff up`, its data under the state directory, so a second
// `skiff up` finds the same cluster. Clients use TLS and must present a certificate from the
// cluster CA; /health and /metrics are on a plain loopback port (etcd's --listen-metrics-urls).
// etcd dies with us: it reads EOF on a pipe when we exit.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export interface EtcdProcess {
  endpoint: string;
  /** etcd's /health on its plain loopback metrics port. */
  healthUrl: string;
  stop(): Promise<void>;
}

/** etcd's TLS files: its serving certificate and the CA client certificates must come from. */
export interface EtcdServerTlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
}

export async function startEtcdProcess(stateDir: string, clientPort: number, peerPort: number, tls: EtcdServerTlsFiles, metricsPort = peerPort + 1): Promise<EtcdProcess> {
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const metrics = `http://127.0.0.1:${metricsPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const dataDir = join(stateDir, "etcd");
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const args = [
    "--name=skiff",
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--cert-file=${tls.certFile}`,
    `--key-file=${tls.keyFile}`,
    `--trusted-ca-file=${tls.trustedCaFile}`,
    "--client-cert-auth",
    `--listen-metrics-urls=${metrics}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=skiff=${peer}`,
    "--logger=zap",
    "--log-level=warn",
  ];
  // The shell holds the pipe: when this process ends (even by SIGKILL), read returns and etcd gets SIGTERM.
  // (Background jobs of a non-interactive shell get /dev/null as stdin, hence fd 3.)
  const script = 'exec 3<&0; "$0" "$@" </dev/null 3<&- & pid=$!; (read _ <&3; kill -TERM $pid 2>/dev/null) & wait $pid';
  const child = spawn("sh", ["-c", script, process.env.SKIFF_ETCD_BIN ?? "etcd", ...args], { stdio: ["pipe", "ignore", "pipe"], detached: true });
  // detached: its own process group, so Ctrl-C in our terminal does not stop it before we have
  // shut down cleanly (controllers release their leases through the apiserver, which needs it).
  let log = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log = (log + d).slice(-4000)));
  child.on("error", () => {});
  const exited = new Promise<void>((r) => child.once("exit", () => r()));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`etcd exited before it was healthy (is port ${clientPort}, ${peerPort} or ${metricsPort} taken? is Debian's etcd-server installed?):\n${log}`);
    }
    try {
      const res = await fetch(`${metrics}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`etcd did not become healthy at ${endpoint}:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    healthUrl: `${metrics}/health`,
    async stop() {
      child.stdin!.end();
      const hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(hard);
    },
  };
}
