// Telling people why a pod is still Pending: the PodScheduled=False condition (reason
// Unschedulable, the FailedScheduling message) written through UpdateStatus only when it
// changed, on a work queue keyed by pod (the newest message wins; a few writes in flight).
import { create } from "@bufbuild/protobuf";
import { cloneMessage } from "../api/codec/index.ts";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { ConditionSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";
import { createWorkQueue } from "../client/workqueue.ts";

export interface ConditionWriter {
  /** Records that the pod (by namespace/name and uid) could not be scheduled, with why. */
  unschedulable(pod: Pod, message: string): void;
  shutDown(): Promise<void>;
  onIdle(): Promise<void>;
}

/** The pod with PodScheduled=False/Unschedulable/message, or undefined when it already says so. */
export function withUnschedulableCondition(pod: Pod, message: string): Pod | undefined {
  const conditions = pod.status?.conditions ?? [];
  const cur = conditions.find((c) => c.type === "PodScheduled");
  if (cur && cur.status === "False" && cur.reason === "Unschedulable" && cur.message === message) return undefined;
  const next = cloneMessage(PodSchema, pod);
  const now = timestampNow();
  const condition = create(ConditionSchema, {
    type: "PodScheduled",
    status: "False",
    reason: "Unschedulable",
    message,
    lastProbeTime: now,
    lastTransitionTime: cur?.status === "False" ? (cur.lastTransitionTime ?? now) : now,
  });
  next.status!.conditions = [...conditions.filter((c) => c.type !== "PodScheduled"), condition];
  return next;
}

export function createConditionWriter(opts: {
  pods: ResourceClient<Pod>;
  /** The newest copy the scheduler knows of (the informer's). */
  getPod(key: string): Pod | undefined;
  log?: Logger;
  concurrency?: number;
}): ConditionWriter {
  const pending = new Map<string, { uid: string; message: string }>();
  const queue = createWorkQueue({
    name: "scheduler-pod-conditions",
    baseDelayMs: 200,
    maxDelayMs: 10_000,
    qps: Infinity,
    onError: (key, err) => opts.log?.debug({ pod: key, err: String(err) }, "writing PodScheduled=False failed; retrying"),
  });
  queue.run(opts.concurrency ?? 8, async (key) => {
    const want = pending.get(key);
    if (!want) return;
    let pod = opts.getPod(key);
    for (let attempt = 0; attempt < 3; attempt++) {
      // Bound meanwhile (the apiserver set PodScheduled=True), replaced, or gone: nothing to say.
      if (!pod || pod.metadata?.uid !== want.uid || pod.spec?.nodeName) break;
      const next = withUnschedulableCondition(pod, want.message);
      if (!next) break;
      try {
        await opts.pods.updateStatus(next);
        break;
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code === Code.NotFound) break;
        if (code !== Code.Aborted) throw err;
        // Our copy was stale: read the newest and try again.
        const [ns, name] = [key.slice(0, key.indexOf("/")), key.slice(key.indexOf("/") + 1)];
        pod = await opts.pods.get(ns, name).catch(() => undefined);
      }
    }
    if (pending.get(key) === want) pending.delete(key);
  });
  return {
    unschedulable(pod, message) {
      const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      pending.set(key, { uid: pod.metadata?.uid ?? "", message });
      queue.add(key);
    },
    shutDown: () => queue.shutDown(),
    onIdle: () => queue.onIdle(),
  };
}
