// Micro-benchmark of decisions as the scheduler process makes them (a report, not a test):
//   node internal/scheduler/bench.ts [--nodes 500] [--pods 5000] [--workloads 50]
// Unlike core/bench.ts, pods and nodes are decoded from protobuf bytes (as the informer hands
// them over, with UUID uids and owner references) and go through the cache: assumed, then seen
// bound, then seen Running. Prints CPU µs per pod for that cycle alone (decoding not counted).
// --cold: before each pod, sweep 32 MiB of other memory (untimed), as a busy process's decoding
// and GC do between two decisions, so the decision pays for its cache misses as it does there.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { NodeSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createSchedulerCache } from "./cache.ts";
import { podInfoOf } from "./core/pod-info.ts";
import { createNodeRotation, isScheduled } from "./core/schedule.ts";
import { makeNode } from "./core/testing.ts";

const decoded = (p: Pod) => fromBinary(PodSchema, toBinary(PodSchema, p));

const sweep = new Float64Array(4 << 20);
let sink = 0;
function evictCaches(): void {
  for (let i = 0; i < sweep.length; i += 8) sink += sweep[i]++;
}

export function benchCache(nodeCount: number, podCount: number, workloadCount: number, cold = false): { cpuMicrosPerPod: number } {
  const cache = createSchedulerCache();
  for (let i = 0; i < nodeCount; i++) {
    cache.setNode(fromBinary(NodeSchema, toBinary(NodeSchema, makeNode(`node-${i}`, { cpu: "8", memory: "32Gi", pods: "110" }))));
  }
  const owners = Array.from({ length: workloadCount }, (_, i) => ({ name: `web-${i}-5d8f`, uid: randomUUID() }));
  const podOf = (i: number): Pod => {
    const o = owners[i % workloadCount];
    return create(PodSchema, {
      metadata: { name: `${o.name}-${i}`, namespace: "bench", uid: randomUUID(), generation: 1n, labels: { app: o.name }, ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: o.name, uid: o.uid, controller: true }] },
      spec: { schedulerName: "default-scheduler", containers: [{ name: "c", image: "x", resources: { requests: { cpu: "10m", memory: "16Mi" } } }] },
      status: { phase: "Pending" },
    });
  };
  let cpu = 0;
  const rotation = createNodeRotation();
  for (let i = 0; i < podCount; i++) {
    const pending = decoded(podOf(i));
    const bound = decoded(pending);
    const running = decoded(pending);
    if (cold) evictCaches();
    const t = process.cpuUsage();
    const info = podInfoOf(pending);
    const snapshot = cache.snapshot();
    const r = rotation.schedule(info, snapshot);
    if (!isScheduled(r)) throw new Error(`pod ${i} did not fit`);
    cache.assume(info, r.node);
    bound.spec!.nodeName = r.node;
    running.spec!.nodeName = r.node;
    running.status!.phase = "Running";
    cache.upsertPod(bound);
    cache.upsertPod(running);
    const d = process.cpuUsage(t);
    cpu += d.user + d.system;
  }
  return { cpuMicrosPerPod: Math.round(cpu / podCount) };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { nodes: { type: "string", default: "500" }, pods: { type: "string", default: "5000" }, workloads: { type: "string", default: "50" }, cold: { type: "boolean", default: false } } });
  const r = benchCache(Number(values.nodes), Number(values.pods), Number(values.workloads), values.cold);
  console.log(`${values.nodes} nodes, ${values.pods} pods of ${values.workloads} workloads${values.cold ? ", cold caches" : ""}: ${r.cpuMicrosPerPod} µs of CPU per pod (decide, assume, bound, Running)${sink < 0 ? "" : ""}`);
}
