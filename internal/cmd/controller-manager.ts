// `skiff controller-manager`: runs the controllers (internal/controller/all.ts) against an
// apiserver. With --leader-elect (the default) several may run; one leads through a Lease in
// skiff-system and the others stand by to take over.
import { defineCommand } from "citty";
import os from "node:os";
import { controllers as allControllers } from "../controller/all.ts";
import { defaultControllerConfig, type ControllerConfig } from "../controller/controller.ts";
import { createControllerManager, type ControllerManagerOptions } from "../controller/manager.ts";
import { createLogger } from "../log/log.ts";
import { componentTransport, componentClientArgs } from "./client-flags.ts";
import { guarded } from "./guard.ts";
import { setDefaultWorkQueueMetrics } from "../client/workqueue.ts";
import { addLeaderChecks } from "../metrics/component.ts";
import { createHealthChecks } from "../metrics/health.ts";
import { createComponentRegistry, leaderElectionStatus } from "../metrics/registry.ts";
import { createWorkQueueMetrics } from "../metrics/workqueue.ts";
import { metricsArgs, metricsListen, serveComponentMetrics } from "./metrics-flags.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go-style durations: "40s", "5m", "1h30m", "500ms", "0". Returns milliseconds. */
/** A true|false flag, as Kubernetes' daemons take them (`--leader-elect=false`). */
export function parseBool(flag: string, value: string): boolean {
  const v = value.trim().toLowerCase() || "true";
  if (v !== "true" && v !== "false") throw new Error(`--${flag} must be true or false, got "${value}"`);
  return v === "true";
}

export function parseDuration(flag: string, value: string): number {
  const v = value.trim();
  if (v === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let at = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * UNITS[m[2]];
    at = re.lastIndex;
  }
  if (v === "" || at !== v.length) throw new Error(`--${flag} must be a duration like 40s, 5m or 1h, got "${value}"`);
  return total;
}

function parseCount(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new Error(`--${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function parseCidr(flag: string, value: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value.trim());
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new Error(`--${flag} must be an IPv4 CIDR like 10.244.0.0/16, got "${value}"`);
  return value.trim();
}

const d = defaultControllerConfig;
const secs = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

export const controllerManagerCommand = defineCommand({
  meta: { name: "controller-manager", description: "Run the controllers (ReplicaSet, …), with leader election among replicas" },
  args: {
    ...componentClientArgs,
    controllers: { type: "string", description: `Controllers to run: '*' for all, names, '-name' to leave one out (known: ${Object.keys(allControllers).join(", ")})`, default: "*" },
    "leader-elect": { type: "string", description: "Compete for a lease and run the controllers only while holding it (true or false)", default: "true" },
    "lease-name": { type: "string", description: "The Lease (in skiff-system) the replicas compete for", default: "skiff-controller-manager" },
    identity: { type: "string", description: "This replica's name in the Lease (default HOSTNAME_PID)" },
    "leader-elect-lease-duration": { type: "string", description: "How long standbys wait after the last renewal before taking over", default: "15s" },
    "leader-elect-renew-deadline": { type: "string", description: "A leader that could not renew for this long stops its controllers", default: "10s" },
    "leader-elect-retry-period": { type: "string", description: "Between renewals and between attempts to acquire", default: "2s" },
    "concurrent-syncs": { type: "string", description: "Workers per controller", default: String(d.concurrentSyncs) },
    "node-monitor-period": { type: "string", description: "How often node heartbeats are checked", default: secs(d.nodeMonitorPeriodMs) },
    "node-monitor-grace-period": { type: "string", description: "A node silent this long is marked not ready", default: secs(d.nodeMonitorGracePeriodMs) },
    "pod-eviction-timeout": { type: "string", description: "Pods of a node not ready this long are evicted", default: secs(d.podEvictionTimeoutMs) },
    "cluster-cidr": { type: "string", description: "The cluster's pod network, split into node ranges", default: d.clusterCidr },
    "node-cidr-mask-size": { type: "string", description: "Prefix length of each node's pod range", default: String(d.nodeCidrMaskSize) },
    "terminated-pod-gc-threshold": { type: "string", description: "Terminated pods kept before the oldest are deleted (0: never)", default: String(d.terminatedPodGcThreshold) },
    "event-ttl": { type: "string", description: "How long events are kept", default: secs(d.eventTtlMs) },
    ...metricsArgs("127.0.0.1:10257"),
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("controller-manager", args["log-level"]);
    const config: ControllerConfig = {
      concurrentSyncs: parseCount("concurrent-syncs", args["concurrent-syncs"], 1, 100),
      nodeMonitorPeriodMs: parseDuration("node-monitor-period", args["node-monitor-period"]),
      nodeMonitorGracePeriodMs: parseDuration("node-monitor-grace-period", args["node-monitor-grace-period"]),
      podEvictionTimeoutMs: parseDuration("pod-eviction-timeout", args["pod-eviction-timeout"]),
      clusterCidr: parseCidr("cluster-cidr", args["cluster-cidr"]),
      nodeCidrMaskSize: parseCount("node-cidr-mask-size", args["node-cidr-mask-size"], 1, 32),
      terminatedPodGcThreshold: parseCount("terminated-pod-gc-threshold", args["terminated-pod-gc-threshold"], 0),
      eventTtlMs: parseDuration("event-ttl", args["event-ttl"]),
    };
    const options: ControllerManagerOptions = {
      controllers: args.controllers.split(","),
      leaderElect: parseBool("leader-elect", args["leader-elect"]),
      leaseName: args["lease-name"],
      identity: args.identity || `${os.hostname()}_${process.pid}`,
      leaseDurationMs: parseDuration("leader-elect-lease-duration", args["leader-elect-lease-duration"]),
      renewDeadlineMs: parseDuration("leader-elect-renew-deadline", args["leader-elect-renew-deadline"]),
      retryPeriodMs: parseDuration("leader-elect-retry-period", args["leader-elect-retry-period"]),
      config,
    };
    metricsListen(args);
    const { transport, server, ca } = await componentTransport(args, log);
    const registry = createComponentRegistry("controller-manager");
    setDefaultWorkQueueMetrics(createWorkQueueMetrics(registry));
    const manager = createControllerManager({ transport, log, options });
    const health = createHealthChecks();
    addLeaderChecks(health, { electing: options.leaderElect !== false, leading: manager.isLeading, synced: manager.isRunning });
    if (options.leaderElect !== false) leaderElectionStatus(registry, options.leaseName ?? "skiff-controller-manager", manager.isLeading);
    const metricsServer = await serveComponentMetrics(args, { component: "controller-manager", registry, health, transport, server, ca, log });
    log.info({ server, identity: manager.identity, controllers: manager.controllers, leaderElect: options.leaderElect }, "starting");
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down (releasing the lease)");
      await manager.stop();
      await metricsServer?.close();
      process.exit(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
    await manager.start();
    // A controller that cannot be built stops the manager (the lease is released by then): exit
    // non-zero so that a supervisor restarts it and an operator sees why.
    await manager.wait();
  }),
});
