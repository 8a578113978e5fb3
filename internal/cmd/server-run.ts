// The control plane of one server, shared by `skiff server` and `skiff up`:
//
//   join (--server/--token, no etcd data yet) → shared keys into <data-dir>/pki
//   → PKI (cluster CA, etcd CA, this member's and components' certificates)
//   → etcd member (peer TLS; a joining one with --initial-cluster-state existing)
//   → apiserver on the local member (every member listed, for failover) → scheduler and
//     controller-manager (leader election) → node agent (unless disabled)
//
// etcd exiting on its own (this server was removed: `skiff server remove`) stops the server.
import { createPublicKey } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createApiTransport } from "../client/transport.ts";
import { createControllerManager } from "../controller/manager.ts";
import { ensureEncryptionConfig } from "../encryption/config.ts";
import { bumpRevision } from "../etcdsnapshot/bump.ts";
import { restoreSnapshot } from "../etcdsnapshot/restore.ts";
import { startSnapshotSchedule } from "../etcdsnapshot/schedule.ts";
import { componentLog, type Logger } from "../log/log.ts";
import type { CertKeyPair } from "../pki/certs.ts";
import { ensurePki, installSharedServerKeys, type ClusterPki } from "../pki/pki.ts";
import { createScheduler } from "../scheduler/scheduler.ts";
import { createEtcdMembers, type EtcdMemberInfo } from "../serverjoin/members.ts";
import { joinAsServer } from "../serverjoin/join.ts";
import { quorumWarning } from "../serverjoin/service.ts";
import { createEtcdStore } from "../storage/etcd.ts";
import { etcdPeerUrl, resetMemberMessage, startEtcdMember } from "./etcd-process.ts";
import { snapshotDir, upSnapshotOptions } from "./etcd-snapshot.ts";
import { serviceAccountOptions } from "./serviceaccount-flags.ts";
import type { SharedServerFlags } from "./server-flags.ts";
import { startServerAgent, type ServerAgent } from "./server-agent.ts";
import { startUpMetrics } from "./up-metrics.ts";

export interface ServerRunOptions {
  flags: SharedServerFlags;
  dataDir: string;
  nodeName: string;
  /** Where the apiserver listens. */
  listen: { host: string; port: number };
  /** The etcd member's address (peers and other servers dial it). */
  memberAddress: string;
  /** etcd's member name (`skiff server`: the node name; `skiff up`: "skiff", as its data has it). */
  memberName: string;
  /** Peer TLS between etcd members (`skiff server`); off: `skiff up`'s loopback-only member. */
  peerTls: boolean;
  /** Join this cluster (when the data dir has no etcd member yet). */
  join?: { server: string; token: string };
  /** Run the node agent; `importImages`: OCI tarballs in this dir are imported at its start. */
  agent?: { importImages?: string };
  log: Logger;
}

export interface RunningServer {
  api: ApiServer;
  pki: ClusterPki;
  /** Stops everything (pods keep running) and exits the process with `exitCode`. */
  stop(signal: string, exitCode?: number): Promise<void>;
}

const ENCRYPTION_CONFIG = "encryption-config.yaml";

/** Runs the server until a signal or a fatal failure stops it (the process exits then). */
export async function runServer(o: ServerRunOptions): Promise<RunningServer> {
  const { flags, log, dataDir } = o;
  const etcdPort = Number(flags["etcd-port"]);
  if (!Number.isInteger(etcdPort) || etcdPort < 1 || etcdPort > 65533) throw new Error(`--etcd-port must be a port number, got "${flags["etcd-port"]}"`);
  const snapshots = upSnapshotOptions(flags);
  const pkiDir = join(dataDir, "pki");
  const etcdDataDir = join(dataDir, "etcd");
  const ports = { clientPort: etcdPort, peerPort: etcdPort + 1, metricsPort: etcdPort + 2 };
  const hasMember = existsSync(join(etcdDataDir, "member"));

  let joined: Awaited<ReturnType<typeof joinAsServer>> | undefined;
  if (o.join && !hasMember) {
    if (flags["encryption-provider-config"]) throw new Error("a joining server takes the cluster's encryption config: leave out --encryption-provider-config");
    if (flags["cluster-reset"]) throw new Error("--cluster-reset restores this server's own etcd: it cannot be combined with joining (--server)");
    const peerUrl = etcdPeerUrl({ address: o.memberAddress, peerPort: ports.peerPort, peerTls: true });
    log.info({ server: o.join.server, peerUrl }, "joining the cluster as a server");
    joined = await joinAsServer({ server: o.join.server, token: o.join.token, serverName: o.nodeName, peerUrl });
    installSharedServerKeys(pkiDir, {
      ca: { cert: joined.caCertificate, key: joined.caKey },
      etcdCa: { cert: joined.etcdCaCertificate, key: joined.etcdCaKey },
      serviceAccountKey: { privateKey: joined.serviceAccountKey, publicKey: joined.serviceAccountPublicKey },
    });
    writeFileSync(join(dataDir, ENCRYPTION_CONFIG), joined.encryptionConfig, { mode: 0o600 });
  } else if (o.join) {
    log.info({ dataDir }, "this server's etcd member exists: restarting it with its data (no new join)");
  }

  const pki = await ensurePki(pkiDir, {
    nodeNames: o.agent ? [o.nodeName] : [],
    serviceCidr: flags["service-cluster-ip-range"],
    extraSans: [o.listen.host, o.memberAddress, ...(flags["tls-san"] ?? "").split(",")].map((x) => x.trim()).filter((x) => x && x !== "0.0.0.0"),
    etcdMember: { addresses: [o.memberAddress] },
    onWrite: (file, why) => log.info({ file }, `certificate ${why}`),
  });
  const etcdPki = pki.etcd!;
  const encryptionConfig = flags["encryption-provider-config"] ?? join(dataDir, ENCRYPTION_CONFIG);
  if (!flags["encryption-provider-config"] && ensureEncryptionConfig(encryptionConfig)) {
    log.info({ path: encryptionConfig }, "generated an encryption config: Secrets are encrypted at rest with a new key");
  }

  const peerTlsFiles = { certFile: pki.files("etcd-member").cert, keyFile: pki.files("etcd-member").key, trustedCaFile: pki.files("etcd-ca").cert };
  let previousRevision: number | undefined;
  if (flags["cluster-reset"] && flags["cluster-reset-restore-path"]) {
    const file = flags["cluster-reset-restore-path"];
    const restored = await restoreSnapshot(file, { dataDir: etcdDataDir, memberName: o.memberName, peerUrl: etcdPeerUrl({ address: o.memberAddress, peerPort: ports.peerPort, peerTls: o.peerTls }) });
    previousRevision = restored.previousRevision;
    log.warn({ snapshot: file, revision: restored.revision, previousData: restored.movedAside }, "restored etcd from a snapshot into a new one-member cluster; agents reconcile their pods with the restored state");
  }
  log.info({ dataDir: etcdDataDir, member: o.memberName }, "starting etcd");
  const etcd = await startEtcdMember({
    dataDir: etcdDataDir,
    name: o.memberName,
    address: o.memberAddress,
    ...ports,
    tls: peerTlsFiles,
    peerTls: o.peerTls ? peerTlsFiles : undefined,
    initialCluster: joined?.initialCluster,
    initialClusterState: joined ? "existing" : "new",
  });
  const etcdTls = { ca: etcdPki.ca.cert, ...etcdPki.client };
  const local = `https://127.0.0.1:${ports.clientPort}`;
  const members = createEtcdMembers({ endpoints: [local], tls: etcdTls });
  const memberList = await members.list();
  const warning = quorumWarning(memberList.length);
  if (warning) log.warn({ members: memberList.length }, warning);
  if (previousRevision !== undefined) {
    // Before anyone reads: resource versions clients hold from before the restore become "too old".
    const bumped = await bumpRevision({ endpoints: [local], tls: etcdTls }, previousRevision, (at, target) => log.info({ at, target }, "advancing etcd's revision past the old data's"));
    log.info(bumped, "etcd's revision is past the old data's; watches from before the restore relist");
  }
  // The local member first (by the URL it advertises, so following the member list keeps it first);
  // the others for when it is unavailable, and members that join later once they have started.
  const store = createEtcdStore({
    endpoints: [etcd.endpoint, ...otherClientUrls(memberList, etcd.endpoint)],
    prefix: "/skiff",
    tls: etcdTls,
    autoSyncIntervalMs: ETCD_SYNC_INTERVAL_MS,
    onEndpointsChanged: (endpoints) => log.info({ endpoints }, "etcd members changed: the apiserver's storage uses these endpoints now"),
  });
  const followMembers = () => void store.syncEndpoints().catch((err: unknown) => log.warn({ err: String(err) }, `could not read etcd's member list; trying again within ${ETCD_SYNC_INTERVAL_MS / 1000} s`));
  const snapshotSchedule = snapshots && startSnapshotSchedule({ conn: { endpoints: [local], tls: etcdTls }, dir: snapshotDir(dataDir), node: o.nodeName, ...snapshots, log: componentLog(log, "etcd-snapshot") });

  // Tokens outlive a restart and every server signs alike: the signing key is the PKI's sa.key (or the flag's).
  const serviceAccounts = serviceAccountOptions(flags, join(pkiDir, "sa.key"));
  const api = await startApiServer({
    store,
    // Logs: the apiserver dials the agent as system:apiserver; the agent serves the PKI's node-<name>-serving certificate.
    kubeletClient: { ...pki.apiserverClient, ca: pki.ca.cert },
    // Agents of other machines join with `skiff token create` tokens; this CA signs their certificates.
    nodeSigner: { ca: pki.ca },
    // Servers join (and leave) through any server's apiserver.
    serverJoin: { members, shared: () => sharedKeys(pki, serviceAccounts.serviceAccountSigningKey!, encryptionConfig), onMembersChanged: followMembers },
    tls: { cert: pki.apiserver.cert, key: pki.apiserver.key, clientCa: pki.ca.cert },
    host: o.listen.host,
    port: o.listen.port,
    log: componentLog(log, "apiserver"),
    compactionIntervalMs: 300_000,
    serviceCidr: flags["service-cluster-ip-range"],
    nodePortRange: flags["service-node-port-range"],
    // Every server's apiserver publishes itself in the `kubernetes` Endpoints; clients learn them all.
    endpointReconciler: "lease",
    ...serviceAccounts,
    encryptionProviderConfig: encryptionConfig,
  });
  // Each component under its own identity, as when they run as separate processes.
  const as = (pair: CertKeyPair) => createApiTransport(api.url, { ca: pki.ca.cert, cert: pair.cert, key: pair.key });
  const running = new AbortController();
  const observe = await startUpMetrics({
    pki,
    server: api.url,
    scheduler: { listen: flags["scheduler-metrics-listen"], transport: as(pki.scheduler) },
    controllerManager: { listen: flags["controller-manager-metrics-listen"], transport: as(pki.controllerManager) },
    log,
  });
  const scheduler = createScheduler({ transport: as(pki.scheduler), log: componentLog(log, "scheduler"), metrics: observe.schedulerMetrics });
  void scheduler.start(running.signal).then(() => observe.schedulerSynced());
  const controllers = createControllerManager({ transport: as(pki.controllerManager), log: componentLog(log, "controller-manager") });
  observe.watchControllerManager(controllers);
  void controllers.start(running.signal);
  let agent: ServerAgent | undefined;
  if (o.agent) agent = await startServerAgent({ flags, dataDir, nodeName: o.nodeName, pki, transport: as(pki.nodes[o.nodeName]), importImages: o.agent.importImages, log });

  let stopping = false;
  const stop = async (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping the server (pods keep running; the next start adopts them)");
    running.abort();
    await snapshotSchedule?.stop();
    await agent?.stop();
    await Promise.all([scheduler.stop(), controllers.stop()]);
    await observe.close();
    await api.close();
    await store.close();
    members.close();
    await etcd.stop();
    process.exit(exitCode);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  // Controllers that cannot start leave the cluster without them: stop it all and exit 1.
  controllers.wait().catch((err: unknown) => {
    log.error({ err: err instanceof Error ? err.message : String(err) }, "the controller-manager failed; stopping the server");
    void stop("controller-manager failure", 1);
  });
  void etcd.exited.then(({ code, log: tail, reset }) => {
    if (stopping) return;
    if (reset) {
      log.error({}, resetMemberMessage(etcdDataDir));
      void stop("etcd member of a reset cluster", 1);
    } else if (/permanently removed/.test(tail)) {
      log.warn({}, "this server's etcd member was removed from the cluster (skiff server remove): etcd stopped; stopping the server");
      void stop("etcd member removed", 0);
    } else {
      log.error({ code, etcdLog: tail.slice(-1000) }, "etcd exited; stopping the server");
      void stop("etcd exited", 1);
    }
  });
  return { api, pki, stop };
}

/** Client URLs of the other started members. */
/** How often the apiserver's storage reads etcd's member list (etcd clientv3's AutoSyncInterval). */
const ETCD_SYNC_INTERVAL_MS = 30_000;

function otherClientUrls(members: EtcdMemberInfo[], self: string): string[] {
  return members.flatMap((m) => m.clientUrls).filter((u) => u !== self);
}

/** What a joining server receives: the key this server signs ServiceAccount tokens with, so every server's tokens verify everywhere. */
function sharedKeys(pki: ClusterPki, serviceAccountSigningKey: string, encryptionConfig: string) {
  return {
    ca: pki.ca,
    etcdCa: pki.etcd!.ca,
    serviceAccountKey: { privateKey: serviceAccountSigningKey, publicKey: createPublicKey(serviceAccountSigningKey).export({ type: "spki", format: "pem" }) as string },
    encryptionConfig: readFileSync(encryptionConfig, "utf8"),
  };
}
