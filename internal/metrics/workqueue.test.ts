// The work queue's metrics under client-go's names, labelled per queue: a real queue handles keys
// (one fails once, one is slow) and the registry shows adds, depth, retries, latencies, in-flight
// work and reconcile outcomes for that queue's name.
import { afterEach, describe, expect, it } from "vitest";
import { createWorkQueue, setDefaultWorkQueueMetrics } from "../client/workqueue.ts";
import { createComponentRegistry, leaderElectionStatus } from "./registry.ts";
import { createWorkQueueMetrics } from "./workqueue.ts";

afterEach(() => setDefaultWorkQueueMetrics(undefined));

const value = async (registry: ReturnType<typeof createComponentRegistry>, name: string, labels: Record<string, string>) => {
  const m = await registry.getSingleMetric(name)!.get();
  return m.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
};

describe("work queue metrics", () => {
  it("reports adds, retries, durations, in-flight work and reconcile errors per queue name", async () => {
    const registry = createComponentRegistry("controller-manager");
    setDefaultWorkQueueMetrics(createWorkQueueMetrics(registry));
    // Made without `metrics`: it reports to the process default, as every controller's queue does.
    const q = createWorkQueue<string>({ name: "replicaset", baseDelayMs: 1 });
    let failed = false;
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    q.run(2, async (key) => {
      if (key === "a" && !failed) {
        failed = true;
        throw new Error("first try fails");
      }
      if (key === "slow") await slow;
    });
    q.add("a");
    q.add("slow");
    // While "slow" runs, its handler shows as unfinished work.
    await new Promise((r) => setTimeout(r, 30));
    const text = await registry.metrics();
    expect(text).toMatch(/workqueue_unfinished_work_seconds\{name="replicaset"\} (?!0\n)\d/);
    expect(text).toMatch(/workqueue_longest_running_processor_seconds\{name="replicaset"\} (?!0\n)\d/);
    release();
    await q.onIdle();

    expect(await value(registry, "workqueue_adds_total", { name: "replicaset" })).toBe(3); // a, slow, a again
    expect(await value(registry, "workqueue_retries_total", { name: "replicaset" })).toBe(1);
    expect(await value(registry, "workqueue_depth", { name: "replicaset" })).toBe(0);
    expect(await value(registry, "controller_runtime_reconcile_errors_total", { controller: "replicaset" })).toBe(1);
    expect(await value(registry, "controller_runtime_reconcile_total", { controller: "replicaset", result: "success" })).toBe(2);
    expect(await value(registry, "workqueue_queue_duration_seconds", { name: "replicaset", le: "+Inf" })).toBe(3);
    expect(await value(registry, "workqueue_work_duration_seconds", { name: "replicaset", le: "+Inf" })).toBe(3);
    const after = await registry.metrics();
    expect(after).toContain('workqueue_unfinished_work_seconds{name="replicaset"} 0');
    await q.shutDown();
  });

  it("serves the process metrics and build info of the component", async () => {
    const text = await createComponentRegistry("scheduler").metrics();
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_gc_duration_seconds", "nodejs_heap_size_used_bytes"]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/skiff_build_info\{component="scheduler",version="[^"]+",node_version="v\d+[^"]*"\} 1/);
  });

  it("shows whether this process leads its lease", async () => {
    const registry = createComponentRegistry("controller-manager");
    let leading = false;
    leaderElectionStatus(registry, "skiff-controller-manager", () => leading);
    expect(await registry.metrics()).toContain('leader_election_master_status{name="skiff-controller-manager"} 0');
    leading = true;
    expect(await registry.metrics()).toContain('leader_election_master_status{name="skiff-controller-manager"} 1');
  });
});
