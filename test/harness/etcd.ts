// Starts a real single-member etcd (Debian etcd-server, `etcd` on PATH) for a test: fresh temp
// data dir, free loopback ports, clients over TLS with client-certificate auth (certificates from
// the test PKI, like `skiff up`'s etcd), /health and /metrics on a separate plain loopback port
// (as kubeadm sets etcd up), waits for /health, and removes everything on stop().
// It runs under startGuardedProcess (process.ts), so a crashed test run cannot leave an etcd
// behind. startEtcdCluster() starts several members the same way, peers over TLS too, for tests
// that kill -9 members (the leader) and start them again.

import { Etcd3 } from "etcd3";
import { join } from "node:path";
import { testPki } from "../../internal/pki/testing.ts";
import { createEtcdMembers, initialClusterFor } from "../../internal/serverjoin/members.ts";
import type { EtcdTls } from "../../internal/storage/etcd.ts";
import { etcdEnvironment } from "../../internal/cmd/etcd-process.ts";
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

interface MemberSpec {
  name: string;
  dir: string;
  endpoint: string;
  metricsBase: string;
  peer: string;
  /** name=peerURL of every member of the cluster. */
  initialCluster: string;
  token: string;
  /** Peers talk TLS with client-certificate auth (the cluster's members); a single member keeps plain loopback. */
  peerTls: boolean;
  /** "existing" for a member added to a running cluster (addMember). Default "new". */
  state?: "new" | "existing";
}

interface MemberProcess {
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts one etcd process for `m` under the guard; resolves once /health says true (needs a quorum). */
async function launchMember(bin: string, timeoutMs: number, m: MemberSpec): Promise<MemberProcess> {
  const pki = await testPki();
  const server = pki.files("etcd-server"); // serving + client usage, loopback names: also the peer certificate
  const args = [
    `--name=${m.name}`,
    `--data-dir=${join(m.dir, "data")}`,
    `--listen-client-urls=${m.endpoint}`,
    `--advertise-client-urls=${m.endpoint}`,
    `--cert-file=${server.cert}`,
    `--key-file=${server.key}`,
    `--trusted-ca-file=${pki.files("ca").cert}`,
    "--client-cert-auth",
    `--listen-metrics-urls=${m.metricsBase}`,
    `--listen-peer-urls=${m.peer}`,
    `--initial-advertise-peer-urls=${m.peer}`,
    `--initial-cluster=${m.initialCluster}`,
    `--initial-cluster-state=${m.state ?? "new"}`,
    `--initial-cluster-token=${m.token}`,
    "--logger=zap",
    "--log-outputs=stderr",
    "--log-level=warn",
  ];
  if (m.peerTls) {
    args.push(`--peer-cert-file=${server.cert}`, `--peer-key-file=${server.key}`, `--peer-trusted-ca-file=${pki.files("ca").cert}`, "--peer-client-cert-auth");
  }
  // While killed on purpose the data dir stays; any other end of the process removes it.
  let outage = false;
  const launch = () =>
    startGuardedProcess({
      command: bin,
      args, // on a restart etcd finds its data dir and ignores the --initial-* flags
      env: etcdEnvironment(), // as skiff up and skiff server run it
      name: `etcd ${m.name}`,
      timeoutMs,
      exitedBefore: "becoming healthy",
      notReady: `at ${m.endpoint} not healthy`,
      ready: async () => {
        const res = await fetch(`${m.metricsBase}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        return res.ok && body.health === "true";
      },
      cleanup: () => {
        if (!outage) removeTempDir(m.dir);
      },
    });
  let proc = await launch();
  return {
    async stop() {
      outage = false;
      await proc.stop();
      removeTempDir(m.dir);
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

async function startOnce(bin: string, timeoutMs: number): Promise<EtcdServer> {
  const [clientPort, peerPort, metricsPort] = await freePorts(3);
  const pki = await testPki();
  const dir = makeTempDir("skiff-etcd-");
  const endpoint = `https://${LOOPBACK}:${clientPort}`;
  const metricsBase = `http://${LOOPBACK}:${metricsPort}`;
  const peer = `http://${LOOPBACK}:${peerPort}`;
  const name = "skiff-test";
  const proc = await launchMember(bin, timeoutMs, {
    name,
    dir,
    endpoint,
    metricsBase,
    peer,
    initialCluster: `${name}=${peer}`,
    token: `skiff-test-${clientPort}`,
    peerTls: false,
  });
  const tls = { ca: pki.ca.cert, cert: pki.apiserverClient.cert, key: pki.apiserverClient.key };
  return {
    endpoint,
    tls,
    metricsUrl: `${metricsBase}/metrics`,
    healthUrl: `${metricsBase}/health`,
    dataDir: join(dir, "data"),
    memberName: name,
    peerUrl: peer,
    stop: () => proc.stop(),
    kill: () => proc.kill(),
    restart: () => proc.restart(),
  };
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const bin = opts.bin ?? process.env.SKIFF_ETCD_BIN ?? "etcd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return retryOnAddressInUse(() => startOnce(bin, timeoutMs));
}

export interface EtcdMember {
  /** etcd's member name, "m0", "m1", … */
  name: string;
  index: number;
  /** Client URL (gRPC over TLS, client certificate required). */
  endpoint: string;
  peerUrl: string;
  /** /health, plain HTTP on loopback. */
  healthUrl: string;
  dataDir: string;
  /** False between kill9() and restart(), and after removeMember(). */
  running: boolean;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Every member's client URL, in member order (what --etcd-servers takes); grows with addMember(). */
  endpoints: string[];
  /** The apiserver's client credentials (createEtcdStore's `tls`). */
  tls: EtcdTls;
  /** kill -9 of one member, keeping its data dir and ports. */
  kill9(member: EtcdMember): Promise<void>;
  /** Starts a killed member again (same data, ports, certificates); resolves once it is healthy. */
  restart(member: EtcdMember): Promise<void>;
  /**
   * A new member joins the running cluster (etcd MemberAdd, then its process with
   * --initial-cluster-state existing); resolves once it is healthy. Waits out etcd's refusal of a
   * member change for 5 s after the previous one.
   */
  addMember(): Promise<EtcdMember>;
  /** etcd MemberRemove of `member` (asked of another member), then its process is stopped. */
  removeMember(member: EtcdMember): Promise<void>;
  /** The member the running members agree leads (etcd's Maintenance Status); waits up to timeoutMs for one. */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  stop(): Promise<void>;
}

/**
 * The status of one member through etcd's Maintenance API: its own id and the leader's id as it
 * sees them ("0" while it knows no leader).
 */
async function memberStatus(endpoint: string, tls: EtcdTls): Promise<{ id: string; leader: string }> {
  const client = new Etcd3({
    hosts: endpoint,
    credentials: { rootCertificate: Buffer.from(tls.ca), certChain: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) },
  });
  try {
    const status = await client.maintenance.status({ deadline: Date.now() + 2000 });
    return { id: status.header.member_id, leader: status.leader };
  } finally {
    client.close();
  }
}

async function startClusterOnce(bin: string, timeoutMs: number, size: number): Promise<EtcdCluster> {
  const pki = await testPki();
  const ports = await freePorts(3 * size);
  const specs: MemberSpec[] = [];
  for (let i = 0; i < size; i++) {
    const [clientPort, peerPort, metricsPort] = ports.slice(3 * i, 3 * i + 3);
    specs.push({
      name: `m${i}`,
      dir: makeTempDir(`skiff-etcd-m${i}-`),
      endpoint: `https://${LOOPBACK}:${clientPort}`,
      metricsBase: `http://${LOOPBACK}:${metricsPort}`,
      peer: `https://${LOOPBACK}:${peerPort}`,
      initialCluster: "",
      token: `skiff-test-${ports[0]}`,
      peerTls: true,
    });
  }
  const initialCluster = specs.map((m) => `${m.name}=${m.peer}`).join(",");
  for (const m of specs) m.initialCluster = initialCluster;
  // Members become healthy only together (a quorum elects a leader): start them all at once.
  const started = await Promise.allSettled(specs.map((m) => launchMember(bin, timeoutMs, m)));
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(started.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    for (const m of specs) removeTempDir(m.dir);
    throw failed.reason;
  }
  const procs = started.map((r) => (r as PromiseFulfilledResult<MemberProcess>).value);
  const tls = { ca: pki.ca.cert, cert: pki.apiserverClient.cert, key: pki.apiserverClient.key };
  const members: EtcdMember[] = specs.map((m, index) => ({ name: m.name, index, endpoint: m.endpoint, peerUrl: m.peer, healthUrl: `${m.metricsBase}/health`, dataDir: join(m.dir, "data"), running: true }));
  const ids = new Map<string, EtcdMember>(); // etcd member id → member, learned from their status
  const endpoints = members.map((m) => m.endpoint);
  // etcd's Cluster API through the running members (but `except`), with the retries a server join makes.
  const clusterApi = (except?: EtcdMember) => createEtcdMembers({ endpoints: members.filter((m) => m.running && m !== except).map((m) => m.endpoint), tls });
  return {
    members,
    endpoints,
    tls,
    async kill9(member) {
      member.running = false;
      await procs[member.index].kill();
    },
    async restart(member) {
      await procs[member.index].restart();
      member.running = true;
    },
    async addMember() {
      const [clientPort, peerPort, metricsPort] = await freePorts(3);
      const index = specs.length;
      const spec: MemberSpec = {
        name: `m${index}`,
        dir: makeTempDir(`skiff-etcd-m${index}-`),
        endpoint: `https://${LOOPBACK}:${clientPort}`,
        metricsBase: `http://${LOOPBACK}:${metricsPort}`,
        peer: `https://${LOOPBACK}:${peerPort}`,
        initialCluster: "",
        token: specs[0].token,
        peerTls: true,
        state: "existing",
      };
      const etcd = clusterApi();
      try {
        const { added, members: all } = await etcd.add(spec.peer);
        spec.initialCluster = initialClusterFor(all, added.id, spec.name);
      } finally {
        etcd.close();
      }
      specs.push(spec);
      procs.push(await launchMember(bin, timeoutMs, spec));
      const member: EtcdMember = { name: spec.name, index, endpoint: spec.endpoint, peerUrl: spec.peer, healthUrl: `${spec.metricsBase}/health`, dataDir: join(spec.dir, "data"), running: true };
      members.push(member);
      endpoints.push(member.endpoint);
      return member;
    },
    async removeMember(member) {
      const etcd = clusterApi(member);
      try {
        const id = (await etcd.list()).find((m) => m.peerUrls.includes(member.peerUrl))?.id;
        if (!id) throw new Error(`etcd cluster: ${member.name} is not a member`);
        await etcd.remove(id);
      } finally {
        etcd.close();
      }
      member.running = false;
      await procs[member.index].stop();
    },
    async leader(waitMs = 30_000) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const seen = await Promise.all(
          members.filter((m) => m.running).map(async (m) => {
            const s = await memberStatus(m.endpoint, tls).catch(() => undefined);
            if (s) ids.set(s.id, m);
            return s?.leader;
          }),
        );
        // Every live member names the same leader, and it is one of them.
        const leader = seen[0] !== undefined && seen[0] !== "0" && seen.every((l) => l === seen[0]) ? ids.get(seen[0]) : undefined;
        if (leader?.running) return leader;
        if (Date.now() > deadline) throw new Error(`etcd cluster: no agreed leader after ${waitMs} ms (members say ${JSON.stringify(seen)})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
}

/**
 * A cluster of `size` (default 3) etcd members, each its own process on its own loopback ports,
 * clients and peers over TLS with client-certificate auth (the test PKI's etcd certificate on
 * both sides).
 */
export async function startEtcdCluster(opts: StartEtcdOptions & { size?: number } = {}): Promise<EtcdCluster> {
  const bin = opts.bin ?? process.env.SKIFF_ETCD_BIN ?? "etcd";
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return retryOnAddressInUse(() => startClusterOnce(bin, timeoutMs, opts.size ?? 3));
}
