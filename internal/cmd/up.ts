// `skiff up`: a whole one-machine cluster in one process (like k3s): the cluster PKI under
// <state-dir>/pki, etcd as a child process (TLS, client certificates) with its data under the
// state directory, containerd (a running one, or our own), and the apiserver,
// scheduler, controller-manager and node agent in this process, each with its own identity (each
// also runs alone as its own `skiff` command). It writes skiffctl's config (an admin context) and
// can apply manifests. Running it again finds
// the same cluster state, and the agent adopts the containers that kept running.
import { defineCommand } from "citty";
import { copyFileSync, mkdirSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createAgent } from "../agent/agent.ts";
import { createCniNetwork } from "../agent/network.ts";
import { startApiServer } from "../apiserver/server.ts";
import { createApiTransport } from "../client/transport.ts";
import { createControllerManager } from "../controller/manager.ts";
import { buildBusyboxImage } from "../images/busybox.ts";
import { createContainerdRuntime } from "../runtime/containerd/index.ts";
import { createScheduler } from "../scheduler/scheduler.ts";
import { configPath, loadConfig, saveConfig, upsert, type CliConfig } from "../cli/config.ts";
import { ensurePki, type ClusterPki } from "../pki/pki.ts";
import type { CertKeyPair } from "../pki/certs.ts";
import { runSkiffctl } from "../cli/main.ts";
import { ensureEncryptionConfig } from "../encryption/config.ts";
import { createLogger, type Logger } from "../log/log.ts";
import { createEtcdStore } from "../storage/etcd.ts";
import { parsePortRange, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { containerLogArgs, containerLogOptions, dnsOptions, loggerReportsPath, startLoggerReports } from "./agent.ts";
import { createEventRecorder } from "../client/events.ts";
import { parseListen } from "./apiserver.ts";
import { useOrStartContainerd } from "./containerd-process.ts";
import { startEtcdProcess } from "./etcd-process.ts";
import { snapshotDir, upSnapshotArgs, upSnapshotOptions } from "./etcd-snapshot.ts";
import { restoreSnapshot, type RestoreResult } from "../etcdsnapshot/restore.ts";
import { bumpRevision } from "../etcdsnapshot/bump.ts";
import { startSnapshotSchedule } from "../etcdsnapshot/schedule.ts";
import { guarded } from "./guard.ts";
import { evictionArgs, evictionOptions } from "./eviction-flags.ts";
import { serviceAccountArgs, serviceAccountOptions } from "./serviceaccount-flags.ts";
import { agentObservability } from "./metrics-flags.ts";
import { startUpMetrics } from "./up-metrics.ts";

/** Secrets are encrypted from the first start: a config with a fresh key, readable by its owner only. */
function defaultEncryptionConfig(stateDir: string, log: Logger): string {
  const path = join(stateDir, "encryption-config.yaml");
  if (ensureEncryptionConfig(path)) {
    log.info({ path }, "generated an encryption config: Secrets are encrypted at rest with a new key");
  }
  return path;
}

export const upCommand = defineCommand({
  meta: { name: "up", description: "Start a one-machine Skiff cluster (etcd, control plane, node agent) in the foreground" },
  args: {
    "state-dir": { type: "string", description: "Where etcd keeps its data", default: join(homedir(), ".skiff", "state") },
    listen: { type: "string", description: "HOST:PORT for the apiserver", default: "127.0.0.1:6443" },
    "etcd-port": { type: "string", description: "etcd client port (its peer port is the next one, its metrics/health port the one after)", default: "2379" },
    "tls-san": { type: "string", description: "More DNS names / IPs for the apiserver's certificate, comma-separated", valueHint: "NAMES" },
    apply: { type: "string", description: "Apply the manifests in this file or directory once the cluster is up" },
    containerd: { type: "string", description: "containerd socket to use (default: /run/containerd/containerd.sock if it serves, else start one under --state-dir)" },
    "node-name": { type: "string", description: "This node's name (default: the hostname, lowercased)" },
    "pod-cidr": { type: "string", description: "This node's pod network", default: "10.88.0.0/24" },
    ...containerLogArgs,
    "agent-listen": { type: "string", description: "HOST:PORT of the agent's log service (and its /metrics, /healthz)", default: "127.0.0.1:10250" },
    "scheduler-metrics-listen": { type: "string", description: 'HOST:PORT of the scheduler\'s /metrics and health (TLS); "off" for none', default: "127.0.0.1:10259" },
    "controller-manager-metrics-listen": { type: "string", description: 'HOST:PORT of the controller-manager\'s /metrics and health (TLS); "off" for none', default: "127.0.0.1:10257" },
    "service-cluster-ip-range": { type: "string", description: "IPv4 CIDR Service ClusterIPs are allocated from", default: "10.96.0.0/12" },
    "service-node-port-range": { type: "string", description: "Port range NodePorts are allocated from, FIRST-LAST", default: "30000-32767" },
    "cluster-domain": { type: "string", description: "The cluster's DNS domain", default: "cluster.local" },
    "dns-upstream": { type: "string", description: "Where the node's DNS sends names outside the cluster domain (default: none, they are refused)", valueHint: "IP[:PORT]" },
    ...serviceAccountArgs,
    ...evictionArgs,
    ...upSnapshotArgs,
    "encryption-provider-config": {
      type: "string",
      description: "EncryptionConfiguration file for Secrets at rest (default: <state-dir>/encryption-config.yaml, generated with a new key on first start)",
      valueHint: "FILE",
    },
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("skiff", args["log-level"]);
    const { host, port } = parseListen(args.listen);
    const etcdPort = Number(args["etcd-port"]);
    if (!Number.isInteger(etcdPort) || etcdPort < 1 || etcdPort > 65534) throw new Error(`--etcd-port must be a port number, got "${args["etcd-port"]}"`);
    const stateDir = resolve(args["state-dir"]);
    parseServiceCidr(args["service-cluster-ip-range"]);
    parsePortRange(args["service-node-port-range"]);
    const dns = dnsOptions(args);
    evictionOptions(args); // bad thresholds stop `up` before anything starts
    const containerLog = containerLogOptions(args);
    const snapshots = upSnapshotOptions(args);

    const nodeName = args["node-name"] || hostname().toLowerCase();
    const pkiDir = join(stateDir, "pki");
    const pki = await ensurePki(pkiDir, {
      nodeNames: [nodeName],
      serviceCidr: args["service-cluster-ip-range"],
      extraSans: (args["tls-san"] ?? "").split(",").map((x) => x.trim()).filter(Boolean),
      onWrite: (file, why) => log.info({ file }, `certificate ${why}`),
    });
    const encryptionConfig = args["encryption-provider-config"] ?? defaultEncryptionConfig(stateDir, log);
    let restored: RestoreResult | undefined;
    if (args["cluster-reset"] && args["cluster-reset-restore-path"]) {
      const file = resolve(args["cluster-reset-restore-path"]);
      restored = await restoreSnapshot(file, { dataDir: join(stateDir, "etcd"), memberName: "skiff", peerUrl: `http://127.0.0.1:${etcdPort + 1}` });
      log.warn({ snapshot: file, revision: restored.revision, previousData: restored.movedAside }, "restored etcd from a snapshot; agents reconcile their pods with the restored state");
    }
    log.info({ stateDir }, "starting etcd");
    const etcd = await startEtcdProcess(stateDir, etcdPort, etcdPort + 1, {
      certFile: pki.files("etcd-server").cert,
      keyFile: pki.files("etcd-server").key,
      trustedCaFile: pki.files("ca").cert,
    });
    const etcdTls = { ca: pki.ca.cert, ...pki.apiserverClient };
    if (restored?.previousRevision !== undefined) {
      // Before anyone reads: resource versions clients hold from before the restore become "too old".
      const bumped = await bumpRevision({ endpoints: [etcd.endpoint], tls: etcdTls }, restored.previousRevision, (at, target) => log.info({ at, target }, "advancing etcd's revision past the old data's"));
      log.info(bumped, "etcd's revision is past the old data's; watches from before the restore relist");
    }
    const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/skiff", tls: etcdTls });
    const snapshotSchedule = snapshots && startSnapshotSchedule({ conn: { endpoints: [etcd.endpoint], tls: etcdTls }, dir: snapshotDir(stateDir), node: nodeName, ...snapshots, log: log.child({ component: "etcd-snapshot" }) });
    const agentListen = parseListen(args["agent-listen"]);
    const server = await startApiServer({
      store,
      // Logs: the apiserver dials the agent as system:apiserver; the agent serves the PKI's node-<name>-serving certificate.
      kubeletClient: { ...pki.apiserverClient, ca: pki.ca.cert },
      // Agents of other machines join with `skiff token create` tokens; this CA signs their certificates.
      nodeSigner: { ca: pki.ca },
      tls: { cert: pki.apiserver.cert, key: pki.apiserver.key, clientCa: pki.ca.cert },
      host,
      port,
      log: log.child({ component: "apiserver" }),
      compactionIntervalMs: 300_000,
      serviceCidr: args["service-cluster-ip-range"],
      nodePortRange: args["service-node-port-range"],
      // Tokens outlive a restart: the signing key is the PKI's sa.key.
      ...serviceAccountOptions(args, join(pkiDir, "sa.key")),
      encryptionProviderConfig: encryptionConfig,
    });
    // Each component under its own identity, as when they run as separate processes.
    const as = (pair: CertKeyPair) => createApiTransport(server.url, { ca: pki.ca.cert, cert: pair.cert, key: pair.key });
    const running = new AbortController();

    const containerd = await useOrStartContainerd(args.containerd, stateDir);
    log.info({ address: containerd.address, started: containerd.started }, "containerd");
    const rootDir = join(stateDir, "agent");
    const runtime = createContainerdRuntime({ address: containerd.address, namespace: "skiff", containerLog: { ...containerLog, reportPath: loggerReportsPath(rootDir) } });
    // The example app's image, built from Debian's busybox-static and imported by the agent.
    const imageDir = join(stateDir, "images");
    mkdirSync(imageDir, { recursive: true });
    await buildBusyboxImage(imageDir, { name: "skiff.local/busybox-httpd", tag: "v1" });

    const observe = await startUpMetrics({
      pki,
      server: server.url,
      scheduler: { listen: args["scheduler-metrics-listen"], transport: as(pki.scheduler) },
      controllerManager: { listen: args["controller-manager-metrics-listen"], transport: as(pki.controllerManager) },
      log,
    });
    const scheduler = createScheduler({ transport: as(pki.scheduler), log: log.child({ component: "scheduler" }), metrics: observe.schedulerMetrics });
    void scheduler.start(running.signal).then(() => observe.schedulerSynced());
    const controllers = createControllerManager({ transport: as(pki.controllerManager), log: log.child({ component: "controller-manager" }) });
    observe.watchControllerManager(controllers);
    void controllers.start(running.signal);
    const nodeTransport = as(pki.nodes[nodeName]);
    const agent = createAgent({
      transport: nodeTransport,
      clusterCa: pki.ca.cert,
      nodeName,
      runtime,
      network: createCniNetwork({
        confDir: join(rootDir, "cni", "net.d"),
        stateDir: join(rootDir, "cni"),
        network: { name: "skiff", bridge: "skiff0", podCidr: args["pod-cidr"] },
        portmap: true,
        onReattach: (podId, reason) => log.warn({ podUid: podId, reason }, "pod network no longer as set up (CNI CHECK failed); attaching it again"),
      }),
      rootDir,
      log: log.child({ component: "agent" }),
      podCidr: args["pod-cidr"],
      proxy: { serviceCidr: args["service-cluster-ip-range"] },
      eviction: evictionOptions(args, containerd.started ? join(stateDir, "containerd", "root") : undefined),
      listen: agentListen,
      tls: { ...pki.nodeServing[nodeName], clientCa: pki.ca.cert },
      importImages: imageDir,
      dns,
      // Work queues (the agent's too) report on the controller-manager's port: one process, one set.
      ...agentObservability(nodeTransport, log.child({ component: "agent" }), { workQueues: false }),
    });
    await agent.start();
    const loggerReports = await startLoggerReports(rootDir, {
      runtime,
      recorder: createEventRecorder({ transport: nodeTransport, component: "skiff-agent", host: nodeName }),
      log: log.child({ component: "agent" }),
    });

    // skiffctl finds this cluster without flags, as the admin.
    const cfgPath = configPath();
    await saveConfig(cfgPath, adminContext(await loadConfig(cfgPath), server.url, pki));
    log.info({ server: server.url, config: cfgPath }, "cluster is up; try: npx skiffctl get all -A");

    if (args.apply) {
      const code = await runSkiffctl(["apply", "-f", args.apply, "--server", server.url, "--context", ADMIN_CONTEXT], {
        out: (t) => void process.stdout.write(t),
        err: (t) => void process.stderr.write(t),
        readStdin: async () => "",
        env: process.env,
        signal: new AbortController().signal,
      });
      if (code !== 0) log.warn({ manifests: args.apply }, "some manifests could not be applied: see the errors above (the others were; the cluster keeps running)");
    }

    let stopping = false;
    const stop = async (signal: string, exitCode = 0) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping the cluster (pods keep running; the next start adopts them)");
      running.abort();
      await snapshotSchedule?.stop();
      await agent.stop();
      await Promise.all([scheduler.stop(), controllers.stop()]);
      await runtime.close();
      loggerReports.close();
      await containerd.stop();
      await observe.close();
      await server.close();
      await store.close();
      await etcd.stop();
      process.exit(exitCode);
    };
    process.on("SIGINT", () => void stop("SIGINT"));
    process.on("SIGTERM", () => void stop("SIGTERM"));
    // Controllers that cannot start leave the cluster without them: stop it all and exit 1.
    controllers.wait().catch((err: unknown) => {
      log.error({ err: err instanceof Error ? err.message : String(err) }, "the controller-manager failed; stopping the cluster");
      void stop("controller-manager failure", 1);
    });
  }),
});

const ADMIN_CONTEXT = "admin@skiff";

/**
 * Copies the CA and the admin's certificate next to skiffctl's config (~/.skiff/pki/) and makes an
 * admin context for this cluster the current one; other clusters and contexts stay.
 */
function adminContext(cfg: CliConfig, server: string, pki: ClusterPki): CliConfig {
  const dir = join(dirname(configPath()), "pki");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  copyFileSync(pki.files("ca").cert, join(dir, "ca.crt"));
  copyFileSync(pki.files("admin").cert, join(dir, "admin.crt"));
  copyFileSync(pki.files("admin").key, join(dir, "admin.key"));
  const { server: _old, ...rest } = cfg;
  return {
    ...rest,
    clusters: upsert(cfg.clusters, { name: "skiff", cluster: { server, "certificate-authority": join(dir, "ca.crt") } }),
    users: upsert(cfg.users, { name: "admin@skiff", user: { "client-certificate": join(dir, "admin.crt"), "client-key": join(dir, "admin.key") } }),
    contexts: upsert(cfg.contexts, { name: ADMIN_CONTEXT, context: { cluster: "skiff", user: "admin@skiff" } }),
    "current-context": ADMIN_CONTEXT,
  };
}
