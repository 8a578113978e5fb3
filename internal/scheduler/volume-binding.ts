// The scheduler's side of volume binding: the VolumeBinding filter reads claims, volumes and
// classes from informers; once a node is chosen, every unbound WaitForFirstConsumer claim of the
// pod is marked with it (volume.kubernetes.io/selected-node) before the pod is bound, and the PV
// controller binds or provisions for that node. The agent waits for the binding before it starts
// the pod's containers.
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { PersistentVolume, PersistentVolumeClaim, StorageClass } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { SELECTED_NODE_ANNOTATION } from "../api/storage.ts";
import type { SharedInformerFactory } from "../client/informer.ts";
import { createResourceClient } from "../client/resource-client.ts";
import type { FilterPlugin } from "./core/framework.ts";
import { podClaimNames, volumeBindingFilter, waitsForFirstConsumer, type VolumeLister } from "./core/plugins/volume-binding.ts";

export interface VolumeBinding {
  filter: FilterPlugin;
  /** Marks the pod's unbound WaitForFirstConsumer claims with the chosen node. */
  selectNode(pod: Pod, node: string): Promise<void>;
  onChange(listener: () => void): () => void;
  waitForSync(signal: AbortSignal): Promise<unknown>;
}

export function createVolumeBinding(opts: { transport: Transport; informers: SharedInformerFactory }): VolumeBinding {
  const claims = opts.informers.informerFor<PersistentVolumeClaim>("PersistentVolumeClaim");
  const volumes = opts.informers.informerFor<PersistentVolume>("PersistentVolume");
  const classes = opts.informers.informerFor<StorageClass>("StorageClass");
  const claimApi = createResourceClient<PersistentVolumeClaim>(opts.transport, "PersistentVolumeClaim");
  const lister: VolumeLister = {
    claim: (ns, name) => claims.get(`${ns}/${name}`),
    volume: (name) => volumes.get(name),
    storageClass: (name) => classes.get(name),
    volumes: () => volumes.list(),
  };
  return {
    filter: volumeBindingFilter(lister),
    async selectNode(pod, node) {
      const ns = pod.metadata!.namespace;
      for (const name of podClaimNames(pod.spec)) {
        const pvc = lister.claim(ns, name);
        if (!pvc || pvc.spec?.volumeName || !waitsForFirstConsumer(pvc, lister)) continue;
        if (pvc.metadata!.annotations[SELECTED_NODE_ANNOTATION] === node) continue;
        const next = structuredClone(pvc);
        next.metadata!.annotations[SELECTED_NODE_ANNOTATION] = node;
        try {
          await claimApi.update(next);
        } catch (err) {
          // Not a conflict over the pod: the bind is retried after backoff, with the newer claim.
          const e = ConnectError.from(err);
          throw new ConnectError(`marking claim ${ns}/${name} for node ${node}: ${e.rawMessage}`, Code.Unavailable);
        }
      }
    },
    onChange(listener) {
      const offs = [claims, volumes, classes].flatMap((inf: any) => [inf.onAdd(listener), inf.onUpdate(listener)]);
      return () => offs.forEach((off: () => void) => off());
    },
    waitForSync: (signal) => Promise.all([claims.waitForSync(signal), volumes.waitForSync(signal), classes.waitForSync(signal)]),
  };
}
