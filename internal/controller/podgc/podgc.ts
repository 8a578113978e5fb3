// Pod garbage collection (Kubernetes' podgc): one periodic sweep over the pod cache.
//
//   sweep ─┬─ terminated pods (Succeeded/Failed) above the threshold ─► oldest first, Delete(grace 0)
//          ├─ pods bound to a node that is gone ─► after orphanGraceMs, and a live Get saying the
//          │                                       node is NotFound ─► Delete(grace 0)
//          └─ unscheduled pods stuck terminating ─► Delete(grace 0)
//   requeue after intervalMs (sooner when an orphan grace ends); a Node deletion sweeps at once.
//
// planPodGc is the pure part: what to delete now and when to look again.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { createResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";

export interface PodGcOptions {
  /** Terminated pods kept; the oldest beyond this are deleted. 0 turns this off. Default 12500. */
  terminatedPodGcThreshold: number;
  /** How long a pod's node must have been missing before the pod is deleted. Default 40 s. */
  orphanGraceMs: number;
  /** Time between sweeps. Default 20 s. */
  intervalMs: number;
}

export const defaultPodGcOptions: Readonly<PodGcOptions> = Object.freeze({
  terminatedPodGcThreshold: 12_500,
  orphanGraceMs: 40_000,
  intervalMs: 20_000,
});

export type PodGcReason = "Terminated" | "Orphaned" | "UnscheduledTerminating";

export interface PodGcPlan {
  /** Pods to delete now. Orphans are only candidates: the node must be confirmed gone first. */
  delete: { pod: Pod; reason: PodGcReason }[];
  /** Milliseconds until an orphan's grace ends (Infinity: none pending). */
  nextInMs: number;
}

const isTerminated = (p: Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
const createdMs = (p: Pod) => (p.metadata?.creationTimestamp ? timestampMs(p.metadata.creationTimestamp) : 0);

/**
 * Decides a sweep. `missingSince` (node name → when it was first seen missing, ms) is updated in
 * place: entries are added for nodes newly missing and removed for nodes that are back or hold
 * no pods.
 */
export function planPodGc(pods: readonly Pod[], nodeNames: ReadonlySet<string>, missingSince: Map<string, number>, opts: Pick<PodGcOptions, "terminatedPodGcThreshold" | "orphanGraceMs">, nowMs: number): PodGcPlan {
  const out: PodGcPlan = { delete: [], nextInMs: Infinity };
  const chosen = new Set<Pod>();
  const take = (pod: Pod, reason: PodGcReason) => {
    if (chosen.has(pod)) return;
    chosen.add(pod);
    out.delete.push({ pod, reason });
  };

  if (opts.terminatedPodGcThreshold > 0) {
    const terminated = pods.filter(isTerminated);
    const excess = terminated.length - opts.terminatedPodGcThreshold;
    if (excess > 0) {
      terminated.sort((a, b) => createdMs(a) - createdMs(b) || (a.metadata!.name < b.metadata!.name ? -1 : 1));
      for (const p of terminated.slice(0, excess)) take(p, "Terminated");
    }
  }

  const missingWithPods = new Set<string>();
  for (const p of pods) {
    const node = p.spec?.nodeName ?? "";
    if (node === "" || nodeNames.has(node)) continue;
    missingWithPods.add(node);
    const since = missingSince.get(node) ?? nowMs;
    missingSince.set(node, since);
    const due = since + opts.orphanGraceMs;
    if (due <= nowMs) take(p, "Orphaned");
    else out.nextInMs = Math.min(out.nextInMs, due - nowMs);
  }
  for (const node of [...missingSince.keys()]) if (!missingWithPods.has(node)) missingSince.delete(node);

  for (const p of pods) {
    const m = p.metadata!;
    // An unbound pod with grace 0 is waiting on its finalizers, which a delete cannot speed up.
    if ((p.spec?.nodeName ?? "") === "" && m.deletionTimestamp && m.deletionGracePeriodSeconds !== 0n) take(p, "UnscheduledTerminating");
  }
  return out;
}

function fromContext(ctx: ControllerContext): Partial<PodGcOptions> {
  return { terminatedPodGcThreshold: ctx.options?.terminatedPodGcThreshold };
}

const SWEEP = "sweep";

export function createPodGcController(ctx: ControllerContext, overrides: Partial<PodGcOptions> = {}): Controller {
  const opts = { ...defaultPodGcOptions };
  for (const layer of [fromContext(ctx), overrides]) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) (opts as any)[k] = v;
  }
  const log = ctx.log;
  const pods = ctx.informers.informerFor<Pod>("Pod");
  const nodes = ctx.informers.informerFor<Node>("Node");
  const podClient = createResourceClient<Pod>(ctx.transport, "Pod");
  const nodeClient = createResourceClient<Node>(ctx.transport, "Node");
  const missingSince = new Map<string, number>();

  const controller = createController({ name: "pod-garbage-collector", log, workers: 1, reconcile });
  const offs = [nodes.onDelete(() => controller.enqueue(SWEEP))];

  async function nodeGone(name: string): Promise<boolean> {
    try {
      await nodeClient.get("", name);
      return false;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return true;
      throw err;
    }
  }

  async function reconcile(): Promise<Result> {
    const plan = planPodGc(pods.list(), new Set(nodes.listKeys()), missingSince, opts, Date.now());
    const confirmed = new Map<string, boolean>();
    let failures = 0;
    for (const { pod, reason } of plan.delete) {
      const m = pod.metadata!;
      try {
        if (reason === "Orphaned") {
          const node = pod.spec!.nodeName;
          if (!confirmed.has(node)) confirmed.set(node, await nodeGone(node));
          if (!confirmed.get(node)) {
            missingSince.delete(node); // the cache was behind: the node exists
            continue;
          }
        }
        log.info({ pod: `${m.namespace}/${m.name}`, node: pod.spec?.nodeName, reason }, "deleting pod");
        await podClient.delete(m.namespace, m.name, { gracePeriodSeconds: 0n, uid: m.uid });
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code === Code.NotFound || code === Code.Aborted) continue;
        failures++;
        log.warn({ pod: `${m.namespace}/${m.name}`, err: String(err) }, "pod GC delete failed");
      }
    }
    if (failures > 0) return { requeue: true };
    return { requeueAfterMs: Math.min(opts.intervalMs, plan.nextInMs) };
  }

  return {
    ...controller,
    run(workers) {
      controller.run(workers ?? 1);
      controller.enqueue(SWEEP);
    },
    async stop() {
      for (const off of offs.splice(0)) off();
      await controller.stop();
    },
  };
}
