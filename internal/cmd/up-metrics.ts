// `skiff up`'s metrics ports: the scheduler's (10259) and the controller-manager's (10257), each
// with its own registry and a serving certificate from the cluster CA (made at start, kept in
// memory); the agent serves its own on its port. Work queues of the whole process report on the
// controller-manager's port.
import { componentLog } from "../log/log.ts";
import type { Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import { setDefaultWorkQueueMetrics } from "../client/workqueue.ts";
import type { ControllerManager } from "../controller/manager.ts";
import { createMetricsAccess } from "../metrics/access.ts";
import { addLeaderChecks } from "../metrics/component.ts";
import { createHealthChecks } from "../metrics/health.ts";
import { createComponentRegistry, leaderElectionStatus } from "../metrics/registry.ts";
import { startMetricsServer, type MetricsServer } from "../metrics/server.ts";
import { createWorkQueueMetrics } from "../metrics/workqueue.ts";
import { issueCert } from "../pki/certs.ts";
import type { ClusterPki } from "../pki/pki.ts";
import { createSchedulerMetrics, type SchedulerMetrics } from "../scheduler/metrics.ts";
import { metricsListen } from "./metrics-flags.ts";

export interface UpMetrics {
  schedulerMetrics: SchedulerMetrics;
  schedulerSynced(): void;
  watchControllerManager(m: ControllerManager): void;
  close(): Promise<void>;
}

export async function startUpMetrics(o: {
  pki: ClusterPki;
  server: string;
  scheduler: { listen: string; transport: Transport };
  controllerManager: { listen: string; transport: Transport };
  log: Logger;
}): Promise<UpMetrics> {
  const servers: MetricsServer[] = [];
  async function serve(component: string, listen: string, transport: Transport, registry: ReturnType<typeof createComponentRegistry>, health: ReturnType<typeof createHealthChecks>) {
    const at = metricsListen({ "metrics-listen": listen });
    if (!at) return;
    const serving = await issueCert(o.pki.ca, { commonName: `skiff-${component}`, sans: [at.host, "127.0.0.1", "localhost"], usage: "server" });
    servers.push(
      await startMetricsServer({
        ...at,
        tls: { ...serving, clientCa: o.pki.ca.cert },
        registry,
        health,
        access: createMetricsAccess({ transport, server: { url: o.server, ca: o.pki.ca.cert } }),
        log: componentLog(o.log, component),
      }),
    );
  }

  const schedRegistry = createComponentRegistry("scheduler");
  const schedHealth = createHealthChecks();
  let schedSynced = false;
  addLeaderChecks(schedHealth, { electing: false, leading: () => true, synced: () => schedSynced });
  await serve("scheduler", o.scheduler.listen, o.scheduler.transport, schedRegistry, schedHealth);

  const cmRegistry = createComponentRegistry("controller-manager");
  setDefaultWorkQueueMetrics(createWorkQueueMetrics(cmRegistry));
  const cmHealth = createHealthChecks();
  let manager: ControllerManager | undefined;
  addLeaderChecks(cmHealth, { electing: true, leading: () => manager?.isLeading() ?? false, synced: () => manager?.isRunning() ?? false });
  leaderElectionStatus(cmRegistry, "skiff-controller-manager", () => manager?.isLeading() ?? false);
  await serve("controller-manager", o.controllerManager.listen, o.controllerManager.transport, cmRegistry, cmHealth);

  return {
    schedulerMetrics: createSchedulerMetrics(schedRegistry),
    schedulerSynced: () => void (schedSynced = true),
    watchControllerManager: (m) => void (manager = m),
    close: async () => void (await Promise.all(servers.map((s) => s.close()))),
  };
}
