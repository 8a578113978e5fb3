// Runs Debian's etcd as a child of `skiff server` / `skiff up`, its data under the data directory,
// so a restart finds the same member. Clients use TLS and must present a certificate from etcd's
// trusted CA; members of a multi-machine etcd talk to each other over peer TLS, each presenting a
// certificate of that CA (--peer-client-cert-auth). /health and /metrics are on a plain loopback
// port (etcd's --listen-metrics-urls). etcd dies with us: it reads EOF on a pipe when we exit.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/**
 * etcd's line when a peer answers from another cluster: this member's data belongs to a cluster a
 * peer no longer is in (that server was reset from a snapshot: `--cluster-reset`).
 */
const PEER_IN_ANOTHER_CLUSTER = "ignored by remote peer due to cluster ID mismatch";

/** What a server whose etcd data is from before a peer's `--cluster-reset` must do. */
export function resetMemberMessage(etcdDataDir: string): string {
  return `this server's etcd member is not in the cluster any more (another server reset it from a snapshot): move ${etcdDataDir} aside and start again with --server URL --token K10… (role server) to rejoin`;
}

/** Raft entries between etcd's snapshots (see the flag below). */
export const ETCD_SNAPSHOT_COUNT = 10_000;

/**
 * The environment etcd runs with: Go's GOGC at 200 unless the operator set one. etcd's heap is
 * small next to its RSS (raft log, bbolt's mapped pages), so collecting at 3× the live heap instead
 * of 2× costs little memory and cuts its CPU under write load: `npm run bench -- scale`, 5,000 pods,
 * etcd CPU per pod −9 to −11 % against the apiserver's in four alternated runs, peak RSS 199 → 207 MiB.
 */
export function etcdEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return env.GOGC === undefined ? { ...env, GOGC: "200" } : env;
}

export interface EtcdProcess {
  /** This member's client URL as clients elsewhere dial it. */
  endpoint: string;
  /** etcd's /health on its plain loopback metrics port. */
  healthUrl: string;
  /** Resolves when etcd exits, with its exit code and the end of its log; `reset`: stopped because a peer is in another cluster (resetMemberMessage). */
  exited: Promise<{ code: number | null; log: string; reset: boolean }>;
  stop(): Promise<void>;
}

/** etcd's TLS files: its serving certificate and the CA client certificates must come from. */
export interface EtcdServerTlsFiles {
  certFile: string;
  keyFile: string;
  trustedCaFile: string;
}

export interface EtcdMemberOptions {
  /** etcd's --data-dir. */
  dataDir: string;
  /** The member's name (`skiff server`: the node name). */
  name: string;
  /** Where the member serves clients and peers: 127.0.0.1 for a one-machine etcd. */
  address: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
  /** Client TLS (always on). */
  tls: EtcdServerTlsFiles;
  /** Peer TLS (the member's certificate is also its peer certificate); absent: plain peer URLs on loopback. */
  peerTls?: EtcdServerTlsFiles;
  /** --initial-cluster; default this member alone. Ignored by etcd once the data dir holds a member. */
  initialCluster?: string;
  /** "existing" when joining a running cluster (after its MemberAdd). Default "new". */
  initialClusterState?: "new" | "existing";
}

/** The member's peer URL for its options. */
export function etcdPeerUrl(o: { address: string; peerPort: number; peerTls?: EtcdServerTlsFiles | boolean }): string {
  return `${o.peerTls ? "https" : "http"}://${hostPort(o.address, o.peerPort)}`;
}

/** `skiff up` before `skiff server` existed: member "skiff" on loopback, data under <stateDir>/etcd. */
export function startEtcdProcess(stateDir: string, clientPort: number, peerPort: number, tls: EtcdServerTlsFiles, metricsPort = peerPort + 1): Promise<EtcdProcess> {
  return startEtcdMember({ dataDir: join(stateDir, "etcd"), name: "skiff", address: "127.0.0.1", clientPort, peerPort, metricsPort, tls });
}

export async function startEtcdMember(o: EtcdMemberOptions): Promise<EtcdProcess> {
  const endpoint = `https://${hostPort(o.address, o.clientPort)}`;
  // Local clients (the apiserver, snapshots) keep dialing loopback whatever the advertised address.
  const listenClient = [...new Set([`https://127.0.0.1:${o.clientPort}`, endpoint])];
  const metrics = `http://127.0.0.1:${o.metricsPort}`;
  const peer = etcdPeerUrl(o);
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const args = [
    `--name=${o.name}`,
    `--data-dir=${o.dataDir}`,
    `--listen-client-urls=${listenClient.join(",")}`,
    `--advertise-client-urls=${endpoint}`,
    `--cert-file=${o.tls.certFile}`,
    `--key-file=${o.tls.keyFile}`,
    `--trusted-ca-file=${o.tls.trustedCaFile}`,
    "--client-cert-auth",
    `--listen-metrics-urls=${metrics}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${o.initialCluster ?? `${o.name}=${peer}`}`,
    `--initial-cluster-state=${o.initialClusterState ?? "new"}`,
    ...(o.peerTls
      ? [`--peer-cert-file=${o.peerTls.certFile}`, `--peer-key-file=${o.peerTls.keyFile}`, `--peer-trusted-ca-file=${o.peerTls.trustedCaFile}`, "--peer-client-cert-auth"]
      : []),
    // etcd keeps its raft log in memory until a snapshot: with 3.4's default (100,000 entries)
    // its RSS climbs to ~400 MiB under pod churn before the first one; 10,000 (3.6's default)
    // levels it at 100–120 MiB (bench soak-etcd).
    `--snapshot-count=${ETCD_SNAPSHOT_COUNT}`,
    "--logger=zap",
    "--log-level=warn",
  ];
  // The shell holds the pipe: when this process ends (even by SIGKILL), read returns and etcd gets SIGTERM.
  // (Background jobs of a non-interactive shell get /dev/null as stdin, hence fd 3.)
  const script = 'exec 3<&0; "$0" "$@" </dev/null 3<&- & pid=$!; (read _ <&3; kill -TERM $pid 2>/dev/null) & wait $pid';
  const child = spawn("sh", ["-c", script, process.env.SKIFF_ETCD_BIN ?? "etcd", ...args], { stdio: ["pipe", "ignore", "pipe"], detached: true, env: etcdEnvironment() });
  // detached: its own process group, so Ctrl-C in our terminal does not stop it before we have
  // shut down cleanly (controllers release their leases through the apiserver, which needs it).
  let log = "";
  // A member that kept running with the old cluster's data would wait for a quorum that is gone, or
  // (with another such member) form a second cluster beside the reset one: stop it instead.
  let reset = false;
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    log = (log + d).slice(-4000);
    if (!reset && d.includes(PEER_IN_ANOTHER_CLUSTER)) {
      reset = true;
      child.stdin!.end();
    }
  });
  child.on("error", () => {});
  const exited = new Promise<{ code: number | null; log: string; reset: boolean }>((r) => child.once("exit", (code) => r({ code, log, reset })));

  // A joining member is healthy only once it has caught up with the others: give it longer.
  const deadline = Date.now() + (o.initialClusterState === "existing" ? 90_000 : 30_000);
  for (;;) {
    if (child.exitCode !== null || reset) {
      if (reset) {
        await exited;
        throw new Error(resetMemberMessage(o.dataDir));
      }
      throw new Error(`etcd exited before it was healthy (is port ${o.clientPort}, ${o.peerPort} or ${o.metricsPort} taken? is Debian's etcd-server installed?):\n${log}`);
    }
    try {
      const res = await fetch(`${metrics}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.stdin!.end();
      throw new Error(`etcd did not become healthy at ${endpoint}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    healthUrl: `${metrics}/health`,
    exited,
    async stop() {
      child.stdin!.end();
      const hard = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(hard);
    },
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
