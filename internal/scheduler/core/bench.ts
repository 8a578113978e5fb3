// Micro-benchmark of the pure core (a report, not a test):
//   node internal/scheduler/core/bench.ts [--nodes 500] [--pods 10000] [--existing 20]
// Schedules pods of a few workloads onto hollow nodes that already run `existing` pods each,
// counting every placed pod on its node (as the scheduler's assume step does), and prints the
// cost per decision for plain pods, pods with a nodeSelector, and pods with anti-affinity.
import { parseArgs } from "node:util";
import { addPodToNode, newNodeInfo, setNode, type NodeInfo, type WorkloadIndex } from "./node-info.ts";
import { podInfoOf } from "./pod-info.ts";
import { schedule, isScheduled } from "./schedule.ts";
import { makeNode, makePod, seededRng, type PodOpts } from "./testing.ts";

export interface BenchResult {
  name: string;
  decisions: number;
  perSecond: number;
  microsPerDecision: number;
  unschedulable: number;
}

export function benchSchedule(name: string, nodeCount: number, podCount: number, existing: number, podOpts: (i: number) => PodOpts): BenchResult {
  const nodes: NodeInfo[] = [];
  const workloads: WorkloadIndex = new Map();
  for (let i = 0; i < nodeCount; i++) {
    const info = newNodeInfo(`node-${i}`, workloads);
    setNode(info, makeNode(info.name, { cpu: "32", memory: "128Gi", pods: "250", labels: { zone: `z${i % 3}` } }));
    for (let j = 0; j < existing; j++) {
      addPodToNode(info, podInfoOf(makePod(`old-${i}-${j}`, { node: info.name, cpu: "100m", memory: "128Mi", owner: `old-${j % 10}` })));
    }
    nodes.push(info);
  }
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const pods = Array.from({ length: podCount }, (_, i) => makePod(`p-${i}`, podOpts(i)));
  const snapshot = { nodes, workloads };
  const rng = seededRng(1);
  let unschedulable = 0;
  const start = performance.now();
  for (const pod of pods) {
    const r = schedule(pod, snapshot, { rng });
    if (isScheduled(r)) addPodToNode(byName.get(r.node)!, podInfoOf(pod));
    else unschedulable++;
  }
  const ms = performance.now() - start;
  return { name, decisions: podCount, perSecond: Math.round((podCount / ms) * 1000), microsPerDecision: Math.round((ms * 1000) / podCount), unschedulable };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { nodes: { type: "string", default: "500" }, pods: { type: "string", default: "10000" }, existing: { type: "string", default: "20" } } });
  const n = Number(values.nodes);
  const p = Number(values.pods);
  const e = Number(values.existing);
  const results = [
    benchSchedule("plain (5 workloads)", n, p, e, (i) => ({ cpu: "100m", memory: "128Mi", owner: `w${i % 5}`, labels: { app: `w${i % 5}` } })),
    benchSchedule("nodeSelector + toleration", n, p, e, (i) => ({ cpu: "100m", owner: `w${i % 5}`, nodeSelector: { zone: "z1" }, tolerations: [{ key: "x", operator: "Exists" }] })),
    benchSchedule("anti-affinity (hostname)", n, Math.min(p, n), e, (i) => ({
      cpu: "100m",
      owner: "spread",
      labels: { app: "spread", i: String(i) },
      affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: "spread" } }, topologyKey: "kubernetes.io/hostname" }] } },
    })),
  ];
  console.log(`${n} nodes, ${e} pods on each at the start`);
  console.table(results);
}
