// The agent's metric names and labels, as the kubelet's and cAdvisor's: runtime operations (count,
// errors, latency) through the instrumented runtime, pod start latency observed once per pod, pod
// syncs, probe results, running pods and containers, and per-container CPU and working set read
// from this very process's cgroups.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createComponentRegistry } from "../metrics/registry.ts";
import { createFakeRuntime } from "../runtime/fake/fake.ts";
import type { ContainerInfo, ContainerRuntime } from "../runtime/runtime.ts";
import { containerStats } from "./container-stats.ts";
import { createAgentMetrics } from "./metrics.ts";

describe("agent metrics", () => {
  it("counts and times runtime operations by operation, with failures as errors", async () => {
    const registry = createComponentRegistry("agent");
    const m = createAgentMetrics(registry);
    const fake = createFakeRuntime({ images: ["busybox:1"] });
    fake.failPull("missing:1", "not found");
    const runtime = m.instrument(fake);
    await runtime.pullImage("busybox:1");
    await expect(runtime.pullImage("missing:1")).rejects.toThrow();
    await runtime.listImages();
    const text = await registry.metrics();
    expect(text).toContain('kubelet_runtime_operations_total{operation_type="pullImage"} 2');
    expect(text).toContain('kubelet_runtime_operations_errors_total{operation_type="pullImage"} 1');
    expect(text).toContain('kubelet_runtime_operations_total{operation_type="listImages"} 1');
    expect(text).toContain('kubelet_runtime_operations_duration_seconds_count{operation_type="pullImage"} 2');
  });

  it("observes a pod's start once, its syncs, and probe results per container", async () => {
    const registry = createComponentRegistry("agent");
    const m = createAgentMetrics(registry);
    m.podSeen("u1");
    m.podRunning("u1");
    m.podRunning("u1"); // a later status write of a running pod is not a second start
    m.podRunning("never-seen");
    m.podSync(0.01);
    const pod = create(PodSchema, { metadata: { name: "web-1", namespace: "shop", uid: "u1" } });
    m.probe(pod, "app", "readiness", true);
    m.probe(pod, "app", "liveness", false);
    const text = await registry.metrics();
    expect(text).toContain("kubelet_pod_start_duration_seconds_count 1");
    expect(text).toContain('kubelet_pod_worker_duration_seconds_count{operation_type="sync"} 1');
    expect(text).toContain('prober_probe_total{probe_type="Readiness",result="successful",namespace="shop",pod="web-1",container="app"} 1');
    expect(text).toContain('prober_probe_total{probe_type="Liveness",result="failed",namespace="shop",pod="web-1",container="app"} 1');
  });

  it("reports running pods and containers, and each running container's CPU and working set from its cgroups", async () => {
    const registry = createComponentRegistry("agent");
    const m = createAgentMetrics(registry);
    const base = { image: "x", imageId: "x", attempt: 0, createdAt: new Date(), logPath: "", podNamespace: "shop" };
    const listing: ContainerInfo[] = [
      // This test's own process stands in for a container's: its cgroups are real.
      { ...base, id: "c1", podUid: "u1", podName: "web-1", containerName: "app", state: "running", pid: process.pid },
      { ...base, id: "c2", podUid: "u1", podName: "web-1", containerName: "init", state: "exited" },
      { ...base, id: "c3", podUid: "u2", podName: "web-2", containerName: "app", state: "created" },
    ];
    m.containersFrom({ listContainers: async () => listing } as Partial<ContainerRuntime> as ContainerRuntime);
    const text = await registry.metrics();
    expect(text).toContain("kubelet_running_pods 1");
    expect(text).toContain('kubelet_running_containers{container_state="running"} 1');
    expect(text).toContain('kubelet_running_containers{container_state="exited"} 1');
    expect(text).toContain('kubelet_running_containers{container_state="created"} 1');
    const mem = /container_memory_working_set_bytes\{namespace="shop",pod="web-1",container="app"\} (\d+)/.exec(text);
    const cpu = /container_cpu_usage_seconds_total\{namespace="shop",pod="web-1",container="app"\} ([\d.e+-]+)/.exec(text);
    expect(Number(mem?.[1])).toBeGreaterThan(0);
    expect(Number(cpu?.[1])).toBeGreaterThan(0);
    expect(text).not.toContain('container="init"}');
  });

  it("reads nothing for a process that is gone", () => {
    expect(containerStats(2 ** 22 + 12345)).toBeUndefined();
    expect(containerStats(process.pid)!.workingSetBytes).toBeGreaterThan(0);
  });
});
