// `--metrics-listen` and its TLS flags on `skiff scheduler` and `skiff controller-manager`: the
// port of /metrics, /healthz, /livez and /readyz (Kubernetes' --secure-port: 10259 and 10257).
// Off unless asked for: several schedulers or controller-managers share a machine (standbys,
// tests, benchmarks), and a fixed default port would stop all but the first; `skiff up` serves them.
// Without --tls-cert-file the port serves a self-signed certificate made at start (as
// kube-scheduler does); client certificates are checked against the cluster CA.
import type { Transport } from "@connectrpc/connect";
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import { createMetricsAccess } from "../metrics/access.ts";
import type { AgentOptions } from "../agent/agent.ts";
import { createAgentMetrics } from "../agent/metrics.ts";
import { setDefaultWorkQueueMetrics } from "../client/workqueue.ts";
import { createHealthChecks, type HealthChecks } from "../metrics/health.ts";
import { createComponentRegistry, type Registry } from "../metrics/registry.ts";
import { createObservabilityHandler, startMetricsServer, type MetricsServer } from "../metrics/server.ts";
import { createWorkQueueMetrics } from "../metrics/workqueue.ts";
import { createCa, issueCert } from "../pki/certs.ts";
import { parseListen } from "./apiserver.ts";

export function metricsArgs(usualListen: string) {
  return {
    "metrics-listen": {
      type: "string",
      description: `HOST:PORT serving /metrics (RBAC: get on the path) and /healthz, /livez, /readyz over TLS, e.g. ${usualListen}; default "off"`,
      default: "off",
    },
    "tls-cert-file": { type: "string", description: "Serving certificate of the metrics port (default: a self-signed one made at start)", valueHint: "FILE" },
    "tls-private-key-file": { type: "string", description: "Its key", valueHint: "FILE" },
    "client-ca-file": { type: "string", description: "CA of the client certificates the metrics port accepts (default: the --certificate-authority)", valueHint: "FILE" },
  } as const;
}

export interface MetricsFlagValues {
  "metrics-listen": string;
  "tls-cert-file"?: string;
  "tls-private-key-file"?: string;
  "client-ca-file"?: string;
}

/** Checks the flags before anything starts; undefined when the port is off. */
export function metricsListen(args: MetricsFlagValues): { host: string; port: number } | undefined {
  if (args["metrics-listen"] === "off") return undefined;
  if (!!args["tls-cert-file"] !== !!args["tls-private-key-file"]) throw new Error("--tls-cert-file and --tls-private-key-file go together");
  try {
    return parseListen(args["metrics-listen"]);
  } catch {
    throw new Error(`--metrics-listen must be HOST:PORT or "off", got "${args["metrics-listen"]}"`);
  }
}

/** A certificate for `host` signed by a throwaway CA, for a port without --tls-cert-file. */
export async function selfSignedServing(host: string, name: string): Promise<{ cert: string; key: string }> {
  const ca = await createCa(`${name}-self-signed-ca`, 1);
  return issueCert(ca, { commonName: name, sans: [host, "127.0.0.1", "localhost"], usage: "server" });
}

export async function serveComponentMetrics(
  args: MetricsFlagValues,
  c: { component: string; registry: Registry; health: HealthChecks; transport: Transport; server: string; ca: string; log: Logger },
): Promise<MetricsServer | undefined> {
  const listen = metricsListen(args);
  if (!listen) return undefined;
  const serving = args["tls-cert-file"]
    ? { cert: readFileSync(args["tls-cert-file"], "utf8"), key: readFileSync(args["tls-private-key-file"]!, "utf8") }
    : await selfSignedServing(listen.host, c.component);
  if (!args["tls-cert-file"]) c.log.warn("no --tls-cert-file: the metrics port serves a self-signed certificate");
  const clientCa = args["client-ca-file"] ? readFileSync(args["client-ca-file"], "utf8") : c.ca;
  return startMetricsServer({
    ...listen,
    tls: { ...serving, clientCa },
    registry: c.registry,
    health: c.health,
    access: createMetricsAccess({ transport: c.transport, server: { url: c.server, ca: c.ca } }),
    log: c.log,
  });
}

/**
 * The agent's metrics and health on its own port: a registry with the agent's metrics and the work
 * queue's, health checks the agent fills in, and the handler its server calls. Bearer tokens never
 * reach that port (its TLS handshake requires a client certificate), so only certificates count.
 */
export function agentObservability(transport: Transport, log: Logger, opts: { workQueues: boolean }): Pick<AgentOptions, "metrics" | "health" | "observability"> {
  const registry = createComponentRegistry("agent");
  if (opts.workQueues) setDefaultWorkQueueMetrics(createWorkQueueMetrics(registry));
  const health = createHealthChecks();
  return {
    metrics: createAgentMetrics(registry),
    health,
    observability: createObservabilityHandler({ registry, health, access: createMetricsAccess({ transport }), log }),
  };
}
