// The generic work queue's metrics (internal/client/workqueue.ts), with client-go's names so
// Kubernetes dashboards and alerts read them, labelled by queue `name` (one per controller), plus
// controller-runtime's reconcile outcome counters.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { WorkQueueMetrics } from "../client/workqueue.ts";

// client-go's buckets: 10 ns to 10 s, ×10.
const DURATION_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10];

export function createWorkQueueMetrics(registry: Registry): WorkQueueMetrics {
  const registers = [registry];
  const depth = new Gauge({ name: "workqueue_depth", help: "Current depth of the work queue: keys waiting for a worker.", labelNames: ["name"], registers });
  const adds = new Counter({ name: "workqueue_adds_total", help: "Keys added to the work queue (re-adds of a queued key do not count).", labelNames: ["name"], registers });
  const queueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "How long a key waits in the work queue before a worker takes it.",
    labelNames: ["name"],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const workDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "How long handling one key takes.",
    labelNames: ["name"],
    buckets: DURATION_BUCKETS,
    registers,
  });
  const retries = new Counter({ name: "workqueue_retries_total", help: "Keys queued again after a failure (with backoff).", labelNames: ["name"], registers });
  const reconciles = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Keys handled, by result: success, error, requeue, requeue_after.",
    labelNames: ["controller", "result"],
    registers,
  });
  const reconcileErrors = new Counter({ name: "controller_runtime_reconcile_errors_total", help: "Handlers (reconciles) that failed.", labelNames: ["controller"], registers });

  // Read when scraped: the handlers running now, per queue (the latest queue of a name wins: a
  // new leadership term makes new queues under the same names).
  const inFlight = new Map<string, () => { totalMs: number; longestMs: number }>();
  new Gauge({
    name: "workqueue_unfinished_work_seconds",
    help: "Seconds of work done so far by handlers still running (large values: stuck workers).",
    labelNames: ["name"],
    registers,
    collect() {
      for (const [name, read] of inFlight) this.set({ name }, read().totalMs / 1000);
    },
  });
  new Gauge({
    name: "workqueue_longest_running_processor_seconds",
    help: "How long the longest-running handler of the queue has been running.",
    labelNames: ["name"],
    registers,
    collect() {
      for (const [name, read] of inFlight) this.set({ name }, read().longestMs / 1000);
    },
  });

  // prom-client hashes the label object on every call: keep each queue's children instead.
  type Children = {
    depth: ReturnType<Gauge["labels"]>;
    adds: ReturnType<Counter["labels"]>;
    queue: ReturnType<Histogram["labels"]>;
    work: ReturnType<Histogram["labels"]>;
    retries: ReturnType<Counter["labels"]>;
    outcome: Record<"success" | "error" | "requeue" | "requeue_after", ReturnType<Counter["labels"]>>;
    errors: ReturnType<Counter["labels"]>;
  };
  const children = new Map<string, Children>();
  const of = (name: string): Children => {
    let c = children.get(name);
    if (!c) {
      const l = { name };
      const r = (result: string) => reconciles.labels({ controller: name, result });
      c = {
        depth: depth.labels(l),
        adds: adds.labels(l),
        queue: queueDuration.labels(l),
        work: workDuration.labels(l),
        retries: retries.labels(l),
        outcome: { success: r("success"), error: r("error"), requeue: r("requeue"), requeue_after: r("requeue_after") },
        errors: reconcileErrors.labels({ controller: name }),
      };
      children.set(name, c);
    }
    return c;
  };

  return {
    added: (name) => of(name).adds.inc(),
    depth: (name, n) => of(name).depth.set(n),
    queueLatencyMs: (name, ms) => of(name).queue.observe(ms / 1000),
    workDurationMs: (name, ms) => of(name).work.observe(ms / 1000),
    retried: (name) => of(name).retries.inc(),
    handled(name, outcome) {
      const c = of(name);
      c.outcome[outcome].inc();
      if (outcome === "error") c.errors.inc();
    },
    track(name, read) {
      of(name);
      inFlight.set(name, read);
    },
  };
}
