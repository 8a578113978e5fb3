// The status manager: writes a pod's status through UpdateStatus only when it differs from the
// newest status known (the informer's copy, or what this agent wrote last if the informer has
// not caught up), and on a conflict re-reads the pod and computes again on the fresh copy.
import { create, equals } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PodStatusSchema, type Pod, type PodStatus } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { compareResourceVersions } from "../client/informer.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Logger } from "../log/log.ts";

export interface StatusManager {
  /**
   * Computes the status on the newest copy of the pod and writes it if it changed. Returns the
   * pod as stored (or as known, when nothing was written; undefined when the pod is gone).
   */
  sync(pod: Pod, compute: (base: Pod) => PodStatus): Promise<Pod | undefined>;
  /** Drops what is remembered about a pod (it is gone). */
  forget(uid: string): void;
}

const MAX_ATTEMPTS = 5;

function newest(a: Pod, b: Pod | undefined): Pod {
  if (!b || b.metadata?.uid !== a.metadata?.uid) return a;
  const order = compareResourceVersions(a.metadata!.resourceVersion, b.metadata!.resourceVersion) ?? 0;
  return order >= 0 ? a : b;
}

export function createStatusManager(opts: { client: ResourceClient<Pod>; log: Logger }): StatusManager {
  const written = new Map<string, Pod>();
  return {
    async sync(pod, compute) {
      const uid = pod.metadata!.uid;
      let base = newest(pod, written.get(uid));
      for (let attempt = 1; ; attempt++) {
        const status = compute(base);
        if (equals(PodStatusSchema, status, base.status ?? create(PodStatusSchema))) return base;
        // A shallow copy with the new status: the request is encoded, never changed, so the
        // pod's other fields (shared with the informer's cache) need no deep copy.
        const next: Pod = { ...base, status };
        try {
          const stored = await opts.client.updateStatus(next);
          written.set(uid, stored);
          return stored;
        } catch (err) {
          const code = ConnectError.from(err).code;
          if (code === Code.NotFound) return undefined;
          if (code !== Code.Aborted || attempt >= MAX_ATTEMPTS) throw err;
          opts.log.debug({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, attempt }, "status conflict; re-reading the pod");
          try {
            base = await opts.client.get(pod.metadata!.namespace, pod.metadata!.name);
          } catch (e) {
            if (ConnectError.from(e).code === Code.NotFound) return undefined;
            throw e;
          }
          if (base.metadata!.uid !== uid) return undefined;
        }
      }
    },
    forget(uid) {
      written.delete(uid);
    },
  };
}
