// The scheduler's metric names and labels, as kube-scheduler's: attempts and their latency by
// result, end-to-end latency by attempts, pending pods per queue, and sampled plugin timings that
// leave the decision unchanged.
import { describe, expect, it } from "vitest";
import { createComponentRegistry } from "../metrics/registry.ts";
import { defaultFilters, defaultScorers } from "./core/plugins/index.ts";
import { schedule } from "./core/schedule.ts";
import { buildSnapshot } from "./core/framework.ts";
import { makeNode, makePod } from "./core/testing.ts";
import { createSchedulerMetrics } from "./metrics.ts";

describe("scheduler metrics", () => {
  it("counts attempts by result, end-to-end latency and pending pods per queue", async () => {
    const registry = createComponentRegistry("scheduler");
    const m = createSchedulerMetrics(registry);
    m.attempt("scheduled", 0.002);
    m.attempt("scheduled", 0.003);
    m.attempt("unschedulable", 0.001);
    m.scheduled(1.5, 2);
    m.pendingFrom(() => ({ active: 3, backoff: 1, unschedulable: 2 }));
    const text = await registry.metrics();
    expect(text).toContain('scheduler_schedule_attempts_total{result="scheduled",profile="default-scheduler"} 2');
    expect(text).toContain('scheduler_schedule_attempts_total{result="unschedulable",profile="default-scheduler"} 1');
    expect(text).toContain('scheduler_scheduling_attempt_duration_seconds_count{result="scheduled",profile="default-scheduler"} 2');
    expect(text).toContain('scheduler_pod_scheduling_sli_duration_seconds_count{attempts="2"} 1');
    expect(text).toContain('scheduler_pending_pods{queue="active"} 3');
    expect(text).toContain('scheduler_pending_pods{queue="backoff"} 1');
    expect(text).toContain('scheduler_pending_pods{queue="unschedulable"} 2');
  });

  it("times filter and score plugins on one cycle in ten without changing the decision", async () => {
    const registry = createComponentRegistry("scheduler");
    const m = createSchedulerMetrics(registry);
    const snapshot = buildSnapshot([makeNode("small", { cpu: "500m" }), makeNode("a", { cpu: "2" }), makeNode("b", { cpu: "8" })]);
    const pod = makePod("p", { cpu: "1" });
    const decisions = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const p = m.plugins(defaultFilters, defaultScorers);
      const r = schedule(pod, snapshot, { filters: p.filters, scorers: p.scorers, rng: () => 0 });
      p.done();
      decisions.add("node" in r ? r.node : "none");
    }
    expect([...decisions]).toEqual(["b"]);
    const h = await registry.getSingleMetric("scheduler_plugin_execution_duration_seconds")!.get();
    const counts = h.values.filter((v) => (v as { metricName?: string }).metricName === "scheduler_plugin_execution_duration_seconds_count");
    // One sampled cycle: each filter plugin once (node "small" rejected by the resources filter), each scorer once.
    expect(counts.length).toBe(defaultFilters.length + defaultScorers.filter((s) => s.weight !== 0).length);
    expect(counts.every((c) => c.value === 1)).toBe(true);
    expect(counts.some((c) => c.labels.extension_point === "Filter" && c.labels.status === "Unschedulable")).toBe(true);
    expect(counts.some((c) => c.labels.extension_point === "Score")).toBe(true);
  });
});
