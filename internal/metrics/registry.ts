// One Prometheus registry per component: Node's process and runtime metrics (prom-client's
// default set: CPU, RSS, heap, event-loop lag, GC), `skiff_build_info`, and Kubernetes'
// `leader_election_master_status`. Components add their own metrics to it.
import { readFileSync } from "node:fs";
import { Gauge, Registry, collectDefaultMetrics } from "prom-client";

export type { Registry };

let version: string | undefined;
/** The package's version, read once. */
export function skiffVersion(): string {
  if (version === undefined) {
    try {
      version = String(JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version ?? "unknown");
    } catch {
      version = "unknown";
    }
  }
  return version;
}

/**
 * A registry for one component ("scheduler", "controller-manager", "agent", "apiserver"). Several
 * may live in one process (`skiff up`): each gets its own copy of the process metrics.
 */
export function createComponentRegistry(component: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  addBuildInfo(registry, component);
  return registry;
}

/** `skiff_build_info{component,version,node_version} 1`. */
export function addBuildInfo(registry: Registry, component: string): void {
  new Gauge({
    name: "skiff_build_info",
    help: "Always 1: the component, Skiff version and Node.js version that serve these metrics.",
    labelNames: ["component", "version", "node_version"],
    registers: [registry],
  }).set({ component, version: skiffVersion(), node_version: process.version }, 1);
}

/** Kubernetes' leader_election_master_status{name}: 1 while `leading()` says this process holds the lease `name`. */
export function leaderElectionStatus(registry: Registry, lease: string, leading: () => boolean): void {
  new Gauge({
    name: "leader_election_master_status",
    help: "1 while this process is the leader of the lease `name`, 0 while it stands by.",
    labelNames: ["name"],
    registers: [registry],
    collect() {
      this.set({ name: lease }, leading() ? 1 : 0);
    },
  });
}
