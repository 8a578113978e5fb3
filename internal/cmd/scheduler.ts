// `skiff scheduler`: assigns pending pods to nodes. With --leader-elect (the default) several
// replicas may run; the one holding the Lease schedules, the others wait to take over.
import { defineCommand } from "citty";
import { randomUUID } from "node:crypto";
import os from "node:os";
import { runLeaderElection } from "../client/leaderelection.ts";
import { createLogger, type Logger } from "../log/log.ts";
import { createScheduler, DEFAULT_BIND_CONCURRENCY } from "../scheduler/scheduler.ts";
import { parseBool } from "./controller-manager.ts";
import { componentTransport, componentClientArgs } from "./client-flags.ts";
import { guarded } from "./guard.ts";
import { setDefaultWorkQueueMetrics } from "../client/workqueue.ts";
import { addLeaderChecks } from "../metrics/component.ts";
import { createHealthChecks } from "../metrics/health.ts";
import { createComponentRegistry, leaderElectionStatus } from "../metrics/registry.ts";
import { createWorkQueueMetrics } from "../metrics/workqueue.ts";
import { createSchedulerMetrics } from "../scheduler/metrics.ts";
import { metricsArgs, metricsListen, serveComponentMetrics } from "./metrics-flags.ts";

function positiveMs(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number of milliseconds, got "${value}"`);
  return n;
}

/** --percentage-of-nodes-to-score: an integer from 0 (adaptive) to 100 (every node). */
export function percentageOfNodesToScoreFlag(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 100) {
    throw new Error(`--percentage-of-nodes-to-score must be an integer from 0 to 100 (0 = adaptive, 100 = every node), got "${value}"`);
  }
  return n;
}

export const schedulerCommand = defineCommand({
  meta: { name: "scheduler", description: "Run the scheduler: assign pending pods to nodes" },
  args: {
    ...componentClientArgs,
    "leader-elect": { type: "string", description: "Schedule only while holding the Lease, true or false (run several for availability)", default: "true" },
    "lease-name": { type: "string", description: "The Lease used for leader election", default: "skiff-scheduler" },
    "lease-namespace": { type: "string", description: "The Lease's namespace", default: "skiff-system" },
    identity: { type: "string", description: "This candidate's name in the Lease (default: <hostname>_<random>)" },
    "scheduler-name": { type: "string", description: "Schedule pods whose spec.schedulerName is this", default: "default-scheduler" },
    "bind-concurrency": { type: "string", description: "Binds in flight at once", default: String(DEFAULT_BIND_CONCURRENCY) },
    "percentage-of-nodes-to-score": {
      type: "string",
      description: "Stop looking for feasible nodes once this % of them (at least 100) passed; 0 = adaptive like kube-scheduler (50% falling to 5% on big clusters), 100 = all",
      default: "0",
    },
    "backoff-initial": { type: "string", description: "First retry delay (ms) of a pod that did not fit", default: "1000" },
    "backoff-max": { type: "string", description: "Largest retry delay (ms)", default: "10000" },
    ...metricsArgs("127.0.0.1:10259"),
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("scheduler", args["log-level"]);
    const { transport, server, ca } = await componentTransport(args, log);
    const bindConcurrency = Number(args["bind-concurrency"]);
    if (!Number.isInteger(bindConcurrency) || bindConcurrency < 1) throw new Error(`--bind-concurrency must be a positive integer, got "${args["bind-concurrency"]}"`);
    const backoff = { initialMs: positiveMs("backoff-initial", args["backoff-initial"]), maxMs: positiveMs("backoff-max", args["backoff-max"]) };
    const percentage = percentageOfNodesToScoreFlag(args["percentage-of-nodes-to-score"]);
    metricsListen(args);
    const electing = parseBool("leader-elect", args["leader-elect"]);
    const registry = createComponentRegistry("scheduler");
    const metrics = createSchedulerMetrics(registry, args["scheduler-name"]);
    setDefaultWorkQueueMetrics(createWorkQueueMetrics(registry));
    const state = { leading: !electing, synced: false };
    const health = createHealthChecks();
    addLeaderChecks(health, { electing, leading: () => state.leading, synced: () => state.synced });
    if (electing) leaderElectionStatus(registry, args["lease-name"], () => state.leading);
    const metricsServer = await serveComponentMetrics(args, { component: "scheduler", registry, health, transport, server, ca, log });
    const make = () =>
      createScheduler({ transport, log, schedulerName: args["scheduler-name"], bindConcurrency, backoff, percentageOfNodesToScore: percentage, metrics });

    const shutdown = new AbortController();
    let exitCode = 0;
    process.on("SIGTERM", () => shutdown.abort());
    process.on("SIGINT", () => shutdown.abort());

    if (!electing) {
      const scheduler = make();
      await scheduler.start(shutdown.signal);
      state.synced = true;
      await untilAborted(shutdown.signal);
      await scheduler.stop();
    } else {
      const identity = args.identity || `${os.hostname()}_${randomUUID()}`;
      await runLeaderElection(
        {
          transport,
          leaseName: args["lease-name"],
          namespace: args["lease-namespace"],
          identity,
          log,
          // A new scheduler per term: its informers start from a fresh list, nothing carries over.
          onStartedLeading: (term) => lead(make(), term, log, state),
          onStoppedLeading: () => log.info({ identity }, "stopped leading"),
        },
        shutdown.signal,
      ).catch((err) => {
        log.error({ err: String(err) }, "leader election failed");
        exitCode = 1;
      });
    }
    await metricsServer?.close();
    log.info("scheduler stopped");
    process.exit(exitCode);
  }),
});

async function lead(scheduler: ReturnType<typeof createScheduler>, term: AbortSignal, log: Logger, state: { leading: boolean; synced: boolean }): Promise<void> {
  log.info("leading: scheduling pods");
  state.leading = true;
  try {
    await scheduler.start(term);
    state.synced = true;
    await untilAborted(term);
  } finally {
    state.leading = false;
    state.synced = false;
    await scheduler.stop();
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}
