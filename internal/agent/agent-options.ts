// What a node agent is given (createAgent in agent.ts) and what it offers its owner.
import type { Transport } from "@connectrpc/connect";
import type { HealthChecks } from "../metrics/health.ts";
import type { Logger } from "../log/log.ts";
import type { ServiceProxyOptions } from "../network/proxy/index.ts";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import type { NodeDnsOptions } from "./dns.ts";
import type { EvictionManagerOptions } from "./eviction/manager.ts";
import type { HostInfo } from "./host-info.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { PodNetwork } from "./network.ts";
import type { PodRoutingOptions } from "./pod-routing.ts";
import type { AgentServingTls, ObservabilityHandler } from "./server.ts";
/** Kubernetes' nodeStatusReportFrequency (see AgentOptions.statusRefreshMs). */
export const DEFAULT_STATUS_REFRESH_MS = 300_000;

export interface AgentOptions {
  transport: Transport;
  nodeName: string;
  runtime: ContainerRuntime;
  network: PodNetwork;
  /** Pod directories (volumes, logs, /etc files) live under <rootDir>/pods. */
  rootDir: string;
  log: Logger;
  /** Lease renewal, and how often the node status is checked for changes. Default 10 s. */
  heartbeatMs?: number;
  /**
   * An unchanged node status is re-written at least this often (a changed one at the next
   * heartbeat). Default 5 min, the kubelet's nodeStatusReportFrequency: the Lease is the
   * heartbeat, and every Node write goes to every Node watcher (the scheduler, the controllers,
   * each CNI agent's routes).
   */
  statusRefreshMs?: number;
  /** Written to Node.spec.podCIDR when the Node has none. */
  podCidr?: string;
  /** Where the log service listens. Default 127.0.0.1:10250; port 0 picks a free one. */
  listen?: { host: string; port: number };
  /**
   * Annotations of the Node when the agent registers it anew: a joined agent records its identity
   * (internal/join), so that a Node deleted and registered again stays claimed by this machine.
   */
  registrationAnnotations?: Record<string, string>;
  /** The log service's TLS: its certificate, and the CA of the apiserver's client certificate (the only caller it accepts). */
  tls: AgentServingTls;
  /** The node's InternalIP. Default: the listen host if it is one address, else the host's first IPv4. */
  nodeIP?: string;
  /** Overrides the machine's facts (hollow nodes, tests). */
  hostInfo?: Partial<HostInfo>;
  /** Overrides capacity (= allocatable): cpu, memory, pods (default 110). */
  capacity?: Record<string, string>;
  /** Every pod is synced at least this often. Default 10 s. */
  resyncMs?: number;
  /** CrashLoopBackOff: 10 s doubling to 5 min, starting over after a 10 min run. */
  crashLoopBackoff?: { initialMs?: number; maxMs?: number; resetMs?: number };
  /** ImagePullBackOff: 10 s doubling to 5 min. */
  imagePullBackoff?: { initialMs?: number; maxMs?: number };
  /** Length of a probe "second" (tests shorten it). Default 1000. */
  probeSecondMs?: number;
  /** Pods synced concurrently. Default 64. */
  podWorkers?: number;
  /** Copied into every pod as /etc/resolv.conf. Default /etc/resolv.conf. */
  resolvConfPath?: string;
  leaseDurationSeconds?: number;
  /** How often a followed log is polled. Default 250 ms. */
  logPollMs?: number;
  /** Registries (host:port) pulled from over plain HTTP; loopback ones always are. */
  insecureRegistries?: string[];
  /** Containers without a seccomp profile get RuntimeDefault instead of Unconfined (kubelet's --seccomp-default). */
  seccompDefault?: boolean;
  /** Where pods' Localhost seccomp profiles are read from. Default <rootDir>/seccomp. */
  seccompProfileRoot?: string;
  /** An OCI layout tarball, or a directory of `*.tar` ones, imported at start and on change. */
  importImages?: string;
  /** How often importImages is scanned for new or changed files. Default 10 s. */
  importRescanMs?: number;
  /** A pod running sooner than this after its sync began gets one status write (Running). Default 500 ms. */
  firstStatusDelayMs?: number;
  /** Routes to other nodes' pods and the pod masquerade rule (pod-routing.ts); needs podCidr. Absent: none (hollow nodes). */
  podRouting?: PodRoutingOptions;
  /** Run the service proxy (nftables rules for Services); absent: no proxy. */
  proxy?: Omit<ServiceProxyOptions, "transport" | "log" | "podCidr">;
  /**
   * Cluster DNS: served on the pod bridge's gateway address (port 53) unless clusterDns names
   * another server; pods with dnsPolicy ClusterFirst get it in resolv.conf. Default: served, for
   * cluster.local, without upstream.
   */
  dns?: NodeDnsOptions;
  /** PEM of the cluster CA, given to pods as ca.crt beside their ServiceAccount token. */
  clusterCa?: string;
  /**
   * Secret, projected and ServiceAccount token volumes and emptyDir `medium: Memory` on tmpfs
   * (needs root). Default: true on nodes with a pod bridge (real ones), false on hollow nodes.
   */
  memoryVolumes?: boolean;
  /**
   * Node pressure: conditions, eviction and image GC from the node's real figures (see
   * eviction/README.md). Absent: off (hollow nodes share the machine's figures).
   */
  eviction?: AgentEvictionOptions;
  /** Prometheus metrics (metrics.ts); none when absent. */
  metrics?: AgentMetrics;
  /** Where the agent adds its readiness checks (apiserver reachable, pods synced). */
  health?: HealthChecks;
  /** Serves /metrics and the health paths on the agent's port (internal/metrics/server.ts). */
  observability?: ObservabilityHandler;
}

export type AgentEvictionOptions = Pick<EvictionManagerOptions, "thresholds" | "imageFsDir" | "imageGc" | "intervalMs" | "transitionMs" | "onPass">;

export interface Agent {
  /** Resolves once the node is registered and every pod of the node is queued. */
  start(): Promise<void>;
  /** Stops the agent; containers keep running. */
  stop(): Promise<void>;
  /** The log service's port (after start). */
  port(): number;
  /** A renewed serving certificate: the log service's next connections get it (no restart). */
  reloadServingTls(tls: AgentServingTls): void;
}

