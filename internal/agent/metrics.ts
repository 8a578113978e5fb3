// The agent's metrics, with the kubelet's names: pod start latency (first seen → Running), pod
// worker (sync) duration, runtime operations (count, errors, latency by operation; image pulls are
// operation_type="pullImage"), running pods and containers, probe results, and cAdvisor's
// per-container CPU and working set read from cgroups when scraped.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerRuntime } from "../runtime/runtime.ts";
import { containerStats } from "./container-stats.ts";
import type { ProbeKind } from "./probes.ts";

export interface AgentMetrics {
  /** The runtime with every call counted and timed (the agent uses this one). */
  instrument(runtime: ContainerRuntime): ContainerRuntime;
  /** The agent saw a pod it has to start. */
  podSeen(uid: string): void;
  /** The pod's status says Running: observes the start latency once. */
  podRunning(uid: string): void;
  /** The pod is gone from this node. */
  podGone(uid: string): void;
  /** One sync of one pod took `seconds`. */
  podSync(seconds: number): void;
  probe(pod: Pod, container: string, kind: ProbeKind, success: boolean): void;
  /** Reads containers from this runtime (un-instrumented: scrapes are not runtime work) when scraped. */
  containersFrom(runtime: ContainerRuntime): void;
}

// kubelet's buckets: pod start 0.5 s … 1 h; runtime operations 5 ms … 10 s (×2.5 …).
const POD_START_BUCKETS = [0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];
const OP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Runtime methods that are not one operation (streams) or not work (close). */
const UNTIMED = new Set(["events", "close"]);

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  const podStart = new Histogram({ name: "kubelet_pod_start_duration_seconds", help: "From the agent first seeing a pod to the pod Running.", buckets: POD_START_BUCKETS, registers });
  const podWorker = new Histogram({
    name: "kubelet_pod_worker_duration_seconds",
    help: "Time one pod sync takes (create, update or kill of the pod's containers).",
    labelNames: ["operation_type"],
    buckets: OP_BUCKETS,
    registers,
  }).labels({ operation_type: "sync" });
  const ops = new Counter({ name: "kubelet_runtime_operations_total", help: "Container runtime operations, by operation.", labelNames: ["operation_type"], registers });
  const opErrors = new Counter({ name: "kubelet_runtime_operations_errors_total", help: "Container runtime operations that failed, by operation.", labelNames: ["operation_type"], registers });
  const opDuration = new Histogram({
    name: "kubelet_runtime_operations_duration_seconds",
    help: "Container runtime operation latency, by operation.",
    labelNames: ["operation_type"],
    buckets: OP_BUCKETS,
    registers,
  });
  const probes = new Counter({
    name: "prober_probe_total",
    help: "Probe runs, by probe type and result (successful, failed), per container.",
    labelNames: ["probe_type", "result", "namespace", "pod", "container"],
    registers,
  });

  let source: ContainerRuntime | undefined;
  // One runtime listing per scrape, shared by the gauges read in it.
  let listing: Promise<Awaited<ReturnType<ContainerRuntime["listContainers"]>>> | undefined;
  const containers = () => {
    if (!source) return Promise.resolve([]);
    listing ??= source.listContainers().finally(() => setTimeout(() => (listing = undefined), 1000).unref());
    return listing.catch(() => []);
  };
  new Gauge({
    name: "kubelet_running_pods",
    help: "Pods with a running container on this node.",
    registers,
    async collect() {
      this.set(new Set((await containers()).filter((c) => c.state === "running").map((c) => c.podUid)).size);
    },
  });
  new Gauge({
    name: "kubelet_running_containers",
    help: "Containers on this node, by state: running, exited, created, unknown.",
    labelNames: ["container_state"],
    registers,
    async collect() {
      const by = { running: 0, exited: 0, created: 0, unknown: 0 };
      for (const c of await containers()) by[c.state]++;
      for (const [state, n] of Object.entries(by)) this.set({ container_state: state }, n);
    },
  });
  new Counter({
    name: "container_cpu_usage_seconds_total",
    help: "CPU time used by the container's cgroup (cAdvisor).",
    labelNames: ["namespace", "pod", "container"],
    registers,
    async collect() {
      this.reset();
      for (const c of await containers()) {
        const s = c.state === "running" && c.pid ? containerStats(c.pid) : undefined;
        if (s) this.inc({ namespace: c.podNamespace, pod: c.podName, container: c.containerName }, s.cpuSeconds);
      }
    },
  });
  new Gauge({
    name: "container_memory_working_set_bytes",
    help: "Working set of the container's cgroup: usage minus inactive file pages (cAdvisor).",
    labelNames: ["namespace", "pod", "container"],
    registers,
    async collect() {
      this.reset();
      for (const c of await containers()) {
        const s = c.state === "running" && c.pid ? containerStats(c.pid) : undefined;
        if (s) this.set({ namespace: c.podNamespace, pod: c.podName, container: c.containerName }, s.workingSetBytes);
      }
    },
  });

  const seen = new Map<string, number>();
  const opChildren = new Map<string, { count: ReturnType<Counter["labels"]>; errors: ReturnType<Counter["labels"]>; time: ReturnType<Histogram["labels"]> }>();
  const opOf = (op: string) => {
    let c = opChildren.get(op);
    if (!c) opChildren.set(op, (c = { count: ops.labels({ operation_type: op }), errors: opErrors.labels({ operation_type: op }), time: opDuration.labels({ operation_type: op }) }));
    return c;
  };

  return {
    instrument(runtime) {
      // One wrapper per method, made on first use: no closure per call.
      const wrapped = new Map<string, (...args: unknown[]) => unknown>();
      return new Proxy(runtime, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== "function" || typeof prop !== "string" || UNTIMED.has(prop)) return v;
          const known = wrapped.get(prop);
          if (known) return known;
          const timed = (...args: unknown[]) => {
            const start = performance.now();
            const c = opOf(prop);
            c.count.inc();
            const r = v.apply(target, args);
            if (!(r instanceof Promise)) return r;
            return r.then(
              (x) => (c.time.observe((performance.now() - start) / 1000), x),
              (err) => {
                c.time.observe((performance.now() - start) / 1000);
                c.errors.inc();
                throw err;
              },
            );
          };
          wrapped.set(prop, timed);
          return timed;
        },
      });
    },
    podSeen(uid) {
      if (!seen.has(uid)) seen.set(uid, performance.now());
    },
    podRunning(uid) {
      const at = seen.get(uid);
      if (at === undefined || at < 0) return;
      podStart.observe((performance.now() - at) / 1000);
      seen.set(uid, -1); // observed: never again for this pod
    },
    podGone: (uid) => void seen.delete(uid),
    podSync: (seconds) => podWorker.observe(seconds),
    probe(pod, container, kind, success) {
      probes.inc({ probe_type: kind === "liveness" ? "Liveness" : kind === "readiness" ? "Readiness" : "Startup", result: success ? "successful" : "failed", namespace: pod.metadata?.namespace ?? "", pod: pod.metadata?.name ?? "", container });
    },
    containersFrom(runtime) {
      source = runtime;
    },
  };
}

/** A pod sync that reports how long it took (kubelet_pod_worker_duration_seconds). */
export function timedSync<R>(sync: (uid: string) => Promise<R>, metrics: AgentMetrics): (uid: string) => Promise<R> {
  return async (uid) => {
    const start = performance.now();
    try {
      return await sync(uid);
    } finally {
      metrics.podSync((performance.now() - start) / 1000);
    }
  };
}
