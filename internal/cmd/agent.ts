// `skiff agent`: the node agent. Registers this machine as a Node, runs the pods bound to it
// through a container runtime (containerd, or the hollow "fake" runtime), and serves their logs.
import { defineCommand } from "citty";
import { mkdirSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import net from "node:net";
import { readFileSync } from "node:fs";
import { createAgent, type AgentOptions } from "../agent/agent.ts";
import { agentObservability } from "./metrics-flags.ts";
import type { AgentServingTls } from "../agent/server.ts";
import type { NodeDnsOptions } from "../agent/dns.ts";
import { parseUpstream } from "../dns/server.ts";
import { parseClusterDomain } from "../dns/zone.ts";
import { createCniNetwork, createHostNetwork, type PodNetwork } from "../agent/network.ts";
import { ALLOCATED, allocatedPodCidr } from "../agent/pod-cidr.ts";
import { createResourceClient } from "../client/resource-client.ts";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { defaultControllerConfig } from "../controller/controller.ts";
import { formatNet, parseNet } from "../network/routes.ts";
import { normalizeServiceCidr } from "../network/proxy/ruleset.ts";
import { createLogger } from "../log/log.ts";
import { createLoggerReportHandler, type LoggerReportDeps } from "../agent/logger-reports.ts";
import { createEventRecorder } from "../client/events.ts";
import { parseQuantity, quantityToBytes } from "../api/quantity.ts";
import type { ContainerLogOptions, LoggerReports } from "../runtime/containerd/index.ts";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import { parseListen } from "./apiserver.ts";
import { parseDuration } from "./controller-manager.ts";
import { componentTransport, componentClientArgs } from "./client-flags.ts";
import { evictionArgs, evictionOptions } from "./eviction-flags.ts";
import { guarded } from "./guard.ts";
import { JOIN_TOKEN_PREFIX, joinedConnection, servingSans } from "./agent-join.ts";

/** The containerd runtime, loaded only when asked for (the fake runtime needs none of it). */
async function containerdRuntime(address: string, namespace: string, containerLog: ContainerLogOptions): Promise<ContainerRuntime> {
  const { createContainerdRuntime } = await import("../runtime/containerd/index.ts");
  return createContainerdRuntime({ address, namespace, containerLog });
}

/** Flags of container log rotation, as kubelet names them. */
export const containerLogArgs = {
  "container-log-max-size": { type: "string", description: "A container's log file is rotated when it reaches this size (at least 32Ki)", default: "10Mi" },
  "container-log-max-files": { type: "string", description: "Log files kept per container, the current one included (at least 2)", default: "5" },
} as const;

/** --container-log-max-size and --container-log-max-files, checked. */
export function containerLogOptions(args: { "container-log-max-size": string; "container-log-max-files": string }): ContainerLogOptions {
  const size = args["container-log-max-size"];
  let bytes: bigint;
  try {
    bytes = quantityToBytes(parseQuantity(size));
  } catch (err) {
    throw new Error(`--container-log-max-size must be a size such as 10Mi, got "${size}": ${(err as Error).message}`, { cause: err });
  }
  // Two records of the longest line fit: every file holds whole records.
  if (bytes < 32n * 1024n) throw new Error(`--container-log-max-size must be at least 32Ki, got "${size}"`);
  const files = args["container-log-max-files"];
  if (!/^\d+$/.test(files) || Number(files) < 2) throw new Error(`--container-log-max-files must be an integer of at least 2, got "${files}"`);
  return { maxSizeBytes: Number(bytes), maxFiles: Number(files) };
}

/**
 * The agent's end of the container loggers' reports (a FIFO in rootDir): each failed write, and
 * writing working again, becomes a warning in the agent's log and a Warning event on the pod.
 */
export async function startLoggerReports(rootDir: string, deps: LoggerReportDeps): Promise<LoggerReports> {
  const { createLoggerReports } = await import("../runtime/containerd/index.ts");
  mkdirSync(rootDir, { recursive: true });
  const handle = createLoggerReportHandler(deps);
  return createLoggerReports(loggerReportsPath(rootDir), (r) => void handle(r));
}

/** Where the loggers report (give it to the runtime before startLoggerReports reads it). */
export const loggerReportsPath = (rootDir: string) => join(rootDir, "logger-reports");

/** Every --insecure-registry value (the flag repeats; commas separate too), checked. */
function insecureRegistries(rawArgs: string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i];
    if (a === "--insecure-registry" && i + 1 < rawArgs.length) values.push(rawArgs[++i]);
    else if (a.startsWith("--insecure-registry=")) values.push(a.slice("--insecure-registry=".length));
  }
  const out = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  for (const v of out) {
    if (!/^(?:[a-z][a-z0-9+.-]*:\/\/)?[A-Za-z0-9.[\]:-]+\/?$/i.test(v)) throw new Error(`--insecure-registry must be HOST[:PORT], got "${v}"`);
  }
  return out;
}

/** The agent port's certificate, key and client CA, read from their flags; all three are required. */
export function agentTlsFiles(args: { "tls-cert-file"?: string; "tls-private-key-file"?: string; "client-ca-file"?: string }): AgentServingTls {
  const flags = ["tls-cert-file", "tls-private-key-file", "client-ca-file"] as const;
  const missing = flags.filter((f) => !args[f]);
  if (missing.length > 0) {
    throw new Error(`skiff agent needs ${missing.map((f) => `--${f}`).join(", ")}: its port serves logs to the apiserver only, over mutual TLS`);
  }
  const read = (flag: (typeof flags)[number]) => {
    try {
      return readFileSync(args[flag]!, "utf8");
    } catch (err) {
      throw new Error(`--${flag} ${args[flag]}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: read("tls-cert-file"), key: read("tls-private-key-file"), clientCa: read("client-ca-file") };
}

/** An IPv4 CIDR flag, checked (host bits set or a bad prefix is an error naming the flag). */
function cidrFlag(flag: string, value: string): string {
  const v = value.trim();
  const net = v.includes("/") ? parseNet(v) : undefined;
  if (!net || net.prefix < 8) throw new Error(`--${flag} must be an IPv4 CIDR with a prefix from /8 to /32, like 10.244.0.0/16, got "${value}"`);
  if (formatNet(net) !== v) throw new Error(`--${flag} ${v} has host bits set (did you mean ${formatNet(net)}?)`);
  return v;
}

/** --cluster-domain, --cluster-dns and --dns-upstream, checked before anything starts. */
export function dnsOptions(args: { "cluster-domain"?: string; "cluster-dns"?: string; "dns-upstream"?: string }): NodeDnsOptions {
  const domain = parseClusterDomain(args["cluster-domain"] || "cluster.local");
  const clusterDns = args["cluster-dns"] || undefined;
  if (clusterDns !== undefined && net.isIP(clusterDns) === 0) throw new Error(`--cluster-dns must be an IP address, got "${clusterDns}"`);
  const upstream = args["dns-upstream"] || undefined;
  if (upstream !== undefined) parseUpstream(upstream);
  return { domain, clusterDns, upstream };
}

export const agentCommand = defineCommand({
  meta: { name: "agent", description: "Run the node agent: register this node and run the pods bound to it" },
  args: {
    ...componentClientArgs,
    "node-name": { type: "string", description: "This node's name (default: the hostname, lowercased)" },
    runtime: { type: "string", description: "Container runtime: containerd or fake (hollow containers, no processes)", default: "containerd" },
    containerd: { type: "string", description: "containerd's socket", default: "/run/containerd/containerd.sock" },
    "containerd-namespace": { type: "string", description: "containerd namespace for Skiff's containers and images", default: "skiff" },
    "root-dir": { type: "string", description: "Pod directories (volumes, logs) and agent state", default: "/var/lib/skiff" },
    "data-dir": { type: "string", description: "Where an agent that joins with --token K10… keeps its key, certificates and CA (default <root-dir>/agent)", valueHint: "DIR" },
    listen: { type: "string", description: "HOST:PORT of the agent's log service (TLS; the apiserver is its only client)", default: "127.0.0.1:10250" },
    "tls-cert-file": { type: "string", description: "PEM certificate of the agent's port (its SANs must hold the node's InternalIP)", valueHint: "FILE" },
    "tls-private-key-file": { type: "string", description: "PEM private key of --tls-cert-file", valueHint: "FILE" },
    "client-ca-file": { type: "string", description: "PEM CA of the apiserver's client certificate (CN system:apiserver), the only caller the port accepts", valueHint: "FILE" },
    "node-ip": { type: "string", description: "The node's InternalIP (default: the --listen host, or the host's first IPv4 when it listens on all)" },
    "hostname-override": { type: "string", description: "The Hostname address in the Node's status (default: the machine's hostname)" },
    "pod-cidr": {
      type: "string",
      description: `This node's pod network (IPv4 CIDR), or "${ALLOCATED}": wait for the one the controller-manager allocates into the Node`,
      default: "10.88.0.0/24",
    },
    "cluster-cidr": {
      type: "string",
      description: "The cluster's pod network (every node's pod CIDR): pod traffic to it keeps its source IP, the rest is masqueraded",
      default: defaultControllerConfig.clusterCidr,
    },
    "route-resync": { type: "string", description: "How often routes to other nodes' pods and the masquerade rule are checked and repaired", default: "10s" },
    "cni-bin-dir": { type: "string", description: "CNI plugin directory", default: "/usr/lib/cni" },
    "cni-network": { type: "string", description: "CNI network name (also the prefix of pod netns names)", default: "skiff" },
    "cni-bridge": { type: "string", description: "Linux bridge the pods attach to", default: "skiff0" },
    "cni-conf-dir": { type: "string", description: "Where the node's CNI network config is written (default <root-dir>/cni/net.d)" },
    "insecure-registry": {
      type: "string",
      description: "HOST:PORT of a registry pulled from over plain HTTP (repeatable; loopback registries always are)",
      valueHint: "HOST:PORT",
    },
    "import-images": {
      type: "string",
      description: "An OCI layout tarball, or a directory of *.tar ones, imported at start and re-scanned every 10 s",
      valueHint: "PATH",
    },
    "proxy-mode": {
      type: "string",
      description: "Service proxy: nftables (kernel NAT rules for Services) or none (default nftables; none with --runtime fake)",
      valueHint: "nftables|none",
    },
    "service-cluster-ip-range": {
      type: "string",
      description: "The apiserver's Service range: the service proxy rejects traffic to its addresses no Service holds",
      default: "10.96.0.0/12",
    },
    ...evictionArgs,
    cleanup: { type: "boolean", description: "Remove the service proxy's nftables table when the agent stops", default: false },
    "seccomp-default": { type: "boolean", description: "Give containers that set no seccomp profile RuntimeDefault instead of Unconfined", default: false },
    "seccomp-profile-root": { type: "string", description: "Directory of the Localhost seccomp profiles pods may name (default <root-dir>/seccomp)", valueHint: "DIR" },
    "cluster-domain": { type: "string", description: "The cluster's DNS domain", default: "cluster.local" },
    "cluster-dns": { type: "string", description: "Give pods this DNS server instead of serving cluster DNS on the pod bridge's gateway address", valueHint: "IP" },
    "dns-upstream": { type: "string", description: "Where the node's DNS sends names outside the cluster domain (default: none, they are refused)", valueHint: "IP[:PORT]" },
    ...containerLogArgs,
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args, rawArgs }) => {
    const log = createLogger("agent", args["log-level"]);
    const nodeName = args["node-name"] || os.hostname().toLowerCase();
    const { host, port } = parseListen(args.listen);
    const rootDir = args["root-dir"];
    // A join token: credentials come from the cluster (checked CA, node certificates) instead of files.
    const joined = args.token?.startsWith(JOIN_TOKEN_PREFIX)
      ? await joinedConnection({
          server: args.server,
          token: args.token,
          nodeName,
          dataDir: args["data-dir"] || join(rootDir, "agent"),
          sans: servingSans(nodeName, args["node-ip"] || undefined, host),
          log,
        })
      : undefined;
    const tls = joined ? joined.tls : agentTlsFiles(args);
    const serviceCidr = normalizeServiceCidr(args["service-cluster-ip-range"]);
    // A hollow node shares the machine's figures with the others: it reports no pressure.
    const eviction = args.runtime === "fake" ? undefined : evictionOptions(args);
    const containerLog = containerLogOptions(args);
    const { transport, ca } = joined ?? (await componentTransport(args, log));
    const podCidr = args["pod-cidr"] === ALLOCATED
      ? await allocatedPodCidr({ client: createResourceClient<Node>(transport, "Node"), nodeName, log })
      : args["pod-cidr"];
    let runtime: ContainerRuntime;
    let network: PodNetwork;
    let podRouting: AgentOptions["podRouting"];
    let loggerReports: LoggerReports | undefined;
    if (args.runtime === "fake") {
      runtime = createFakeRuntime();
      network = createHostNetwork({ podCidr, stateDir: join(rootDir, "network", "fake") });
    } else if (args.runtime === "containerd") {
      const clusterCidr = cidrFlag("cluster-cidr", args["cluster-cidr"]);
      podRouting = { clusterCidr, network: args["cni-network"], resyncMs: parseDuration("route-resync", args["route-resync"]) };
      if (podRouting.resyncMs! < 100) throw new Error(`--route-resync must be at least 100ms, got "${args["route-resync"]}"`);
      runtime = await containerdRuntime(args.containerd, args["containerd-namespace"], { ...containerLog, reportPath: loggerReportsPath(rootDir) });
      const recorder = createEventRecorder({ transport, component: "skiff-agent", host: nodeName, log });
      loggerReports = await startLoggerReports(rootDir, { runtime, recorder, log });
      network = createCniNetwork({
        pluginDir: args["cni-bin-dir"],
        confDir: args["cni-conf-dir"] || join(rootDir, "cni", "net.d"),
        stateDir: join(rootDir, "cni"),
        // The agent's own masquerade rule (pod-routing.ts) replaces bridge's: it keeps pod IPs
        // between nodes.
        network: { name: args["cni-network"], bridge: args["cni-bridge"], podCidr, ipMasq: false },
        portmap: true,
        onReattach: (podId, reason) => log.warn({ podUid: podId, reason }, "pod network no longer as set up (CNI CHECK failed); attaching it again"),
      });
    } else {
      throw new Error(`--runtime must be containerd or fake, got "${args.runtime}"`);
    }
    const proxyMode = args["proxy-mode"] ?? (args.runtime === "fake" ? "none" : "nftables");
    if (proxyMode !== "nftables" && proxyMode !== "none") throw new Error(`--proxy-mode must be nftables or none, got "${proxyMode}"`);
    // A hollow node shares the machine with others: it must not program the kernel.
    if (proxyMode === "nftables" && args.runtime === "fake") throw new Error("--proxy-mode nftables needs --runtime containerd (hollow nodes program no kernel rules)");
    const dns = dnsOptions(args);
    const agent = createAgent({
      transport,
      // Pods' projected ServiceAccount volume gets the CA that signs the apiserver's certificate.
      clusterCa: ca,
      nodeName,
      registrationAnnotations: joined?.nodeAnnotations,
      runtime,
      network,
      rootDir,
      log,
      podCidr,
      listen: { host, port },
      tls,
      nodeIP: args["node-ip"] || undefined,
      hostInfo: args["hostname-override"] ? { hostname: args["hostname-override"] } : undefined,
      insecureRegistries: insecureRegistries(rawArgs),
      importImages: args["import-images"] ? resolve(args["import-images"]) : undefined,
      seccompDefault: args["seccomp-default"],
      seccompProfileRoot: args["seccomp-profile-root"] ? resolve(args["seccomp-profile-root"]) : undefined,
      podRouting,
      proxy: proxyMode === "nftables" ? { cleanup: args.cleanup, serviceCidr } : undefined,
      eviction,
      dns,
      ...agentObservability(transport, log, { workQueues: true }),
    });
    const renewer = joined?.startRenewal((next) => agent.reloadServingTls(next));
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      renewer?.stop();
      log.info({ signal }, "shutting down (containers keep running)");
      await agent.stop();
      await runtime.close();
      loggerReports?.close();
      process.exit(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
    await agent.start();
  }),
});
