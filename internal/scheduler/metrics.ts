// The scheduler's metrics, named and labelled as kube-scheduler's: attempts by result, how long an
// attempt takes, end-to-end latency from first queued to bound, pending pods per queue, and the
// time each filter/score plugin takes (sampled: one scheduling cycle in ten, as kube-scheduler
// does, so the per-node hot loop stays untimed on the others).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { FilterPlugin, NodeFilter, NodeScorer, ScorePlugin } from "./core/framework.ts";

export type AttemptResult = "scheduled" | "unschedulable" | "error";

export interface SchedulerMetrics {
  /** One scheduling attempt ended (decision, and for "scheduled" the bind). */
  attempt(result: AttemptResult, seconds: number): void;
  /** A pod was bound: `seconds` since it was first queued, after `attempts` tries. */
  scheduled(seconds: number, attempts: number): void;
  /** Reads the queue sizes when scraped. */
  pendingFrom(counts: () => { active: number; backoff: number; unschedulable: number }): void;
  /** The plugins to use for this cycle: timed ones on sampled cycles, the given ones otherwise. */
  plugins(filters: readonly FilterPlugin[], scorers: readonly ScorePlugin[]): { filters: readonly FilterPlugin[]; scorers: readonly ScorePlugin[]; done(): void };
}

const PROFILE = "default-scheduler";
/** One cycle in this many has its plugins timed. */
const SAMPLE_EVERY = 10;
// kube-scheduler's buckets: 1 ms doubling (attempts), 10 µs ×1.5 (plugins), 10 ms ×2 (end to end).
const exponential = (start: number, factor: number, count: number) => Array.from({ length: count }, (_, i) => start * factor ** i);

export function createSchedulerMetrics(registry: Registry, profile = PROFILE): SchedulerMetrics {
  const registers = [registry];
  const attempts = new Counter({
    name: "scheduler_schedule_attempts_total",
    help: "Attempts to schedule pods, by result: scheduled, unschedulable (no node fits), error.",
    labelNames: ["result", "profile"],
    registers,
  });
  const attemptDuration = new Histogram({
    name: "scheduler_scheduling_attempt_duration_seconds",
    help: "Scheduling attempt latency: the decision and, for scheduled pods, the bind.",
    labelNames: ["result", "profile"],
    buckets: exponential(0.001, 2, 15),
    registers,
  });
  const e2e = new Histogram({
    name: "scheduler_pod_scheduling_sli_duration_seconds",
    help: "End-to-end scheduling latency: from the pod first entering the queue to its bind, by the number of attempts.",
    labelNames: ["attempts"],
    buckets: exponential(0.01, 2, 20),
    registers,
  });
  const plugin = new Histogram({
    name: "scheduler_plugin_execution_duration_seconds",
    help: "Time a plugin took in one (sampled) scheduling cycle, by extension point (Filter: all nodes it checked; Score: all feasible nodes).",
    labelNames: ["plugin", "extension_point", "status"],
    buckets: exponential(0.00001, 1.5, 20),
    registers,
  });
  let pending: (() => { active: number; backoff: number; unschedulable: number }) | undefined;
  new Gauge({
    name: "scheduler_pending_pods",
    help: "Pods waiting to be scheduled, by queue: active, backoff, unschedulable.",
    labelNames: ["queue"],
    registers,
    collect() {
      const c = pending?.() ?? { active: 0, backoff: 0, unschedulable: 0 };
      this.set({ queue: "active" }, c.active);
      this.set({ queue: "backoff" }, c.backoff);
      this.set({ queue: "unschedulable" }, c.unschedulable);
    },
  });

  const byResult = {
    scheduled: { count: attempts.labels({ result: "scheduled", profile }), time: attemptDuration.labels({ result: "scheduled", profile }) },
    unschedulable: { count: attempts.labels({ result: "unschedulable", profile }), time: attemptDuration.labels({ result: "unschedulable", profile }) },
    error: { count: attempts.labels({ result: "error", profile }), time: attemptDuration.labels({ result: "error", profile }) },
  };
  let cycle = 0;
  // Unsampled cycles get the plugins as given, without a new object per cycle.
  let untimed: { filters: readonly FilterPlugin[]; scorers: readonly ScorePlugin[]; done(): void } | undefined;
  // One cycle's time per plugin and extension point, observed when the cycle is done.
  type Tally = { plugin: string; point: "Filter" | "Score"; seconds: number; rejected: boolean };
  const timedFilter = (p: FilterPlugin, tallies: Tally[]): FilterPlugin => ({
    name: p.name,
    prepare(pod, snapshot) {
      const t: Tally = { plugin: p.name, point: "Filter", seconds: 0, rejected: false };
      tallies.push(t);
      const start = performance.now();
      const f = p.prepare(pod, snapshot);
      t.seconds += (performance.now() - start) / 1000;
      if (!f) return undefined;
      const timed: NodeFilter = (node) => {
        const s = performance.now();
        const r = f(node);
        t.seconds += (performance.now() - s) / 1000;
        if (r && r.length > 0) t.rejected = true;
        return r;
      };
      return timed;
    },
  });
  const timedScorer = (p: ScorePlugin, tallies: Tally[]): ScorePlugin => ({
    name: p.name,
    weight: p.weight,
    prepare(pod, snapshot) {
      const t: Tally = { plugin: p.name, point: "Score", seconds: 0, rejected: false };
      tallies.push(t);
      const start = performance.now();
      const s = p.prepare(pod, snapshot);
      t.seconds += (performance.now() - start) / 1000;
      if (!s) return undefined;
      // A decision scores every feasible node with one plugin in one pass, then normalizes
      // (core/schedule.ts): the pass is timed as a whole — two clock reads, not two per node.
      let passStart = -1;
      const timed: NodeScorer = {
        score(node) {
          if (passStart < 0) passStart = performance.now();
          return s.score(node);
        },
        normalize(scores) {
          if (passStart >= 0) t.seconds += (performance.now() - passStart) / 1000;
          passStart = -1;
          s.normalize?.(scores);
        },
      };
      return timed;
    },
  });

  return {
    attempt(result, seconds) {
      const r = byResult[result];
      r.count.inc();
      r.time.observe(seconds);
    },
    scheduled(seconds, n) {
      e2e.observe({ attempts: String(Math.min(n, 15)) }, seconds);
    },
    pendingFrom(counts) {
      pending = counts;
    },
    plugins(filters, scorers) {
      if (cycle++ % SAMPLE_EVERY !== 0) {
        if (untimed?.filters !== filters || untimed.scorers !== scorers) untimed = { filters, scorers, done() {} };
        return untimed;
      }
      const tallies: Tally[] = [];
      return {
        filters: filters.map((f) => timedFilter(f, tallies)),
        scorers: scorers.map((s) => timedScorer(s, tallies)),
        done() {
          for (const t of tallies) plugin.observe({ plugin: t.plugin, extension_point: t.point, status: t.rejected ? "Unschedulable" : "Success" }, t.seconds);
        },
      };
    },
  };
}
