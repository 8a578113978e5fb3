// Volume binding (kube-scheduler's VolumeBinding filter): a pod's claims restrict its nodes.
//   claim missing or being deleted          → no node (the pod waits, with the reason)
//   claim bound to a volume                 → nodes the volume's nodeAffinity allows
//   claim unbound, class Immediate / none   → no node until the PV controller binds it
//   claim unbound, WaitForFirstConsumer     → local-path: any node (it is provisioned where the
//                                             pod lands); otherwise nodes with a fitting
//                                             Available volume
// The scheduler then marks such claims with the chosen node (scheduler.ts).
import type { PersistentVolume, PersistentVolumeClaim, StorageClass } from "../../../../gen/skiff/v1alpha1/storage_pb.js";
import { claimClass, LOCAL_PATH_PROVISIONER } from "../../../api/storage.ts";
import { findVolumeFor } from "../../../api/volume-match.ts";
import type { FilterPlugin } from "../framework.ts";
import type { NodeInfo } from "../node-info.ts";
import { termMatches } from "./node-affinity.ts";

/** What volume binding reads: the claims, volumes and classes of the cluster (informer caches). */
export interface VolumeLister {
  claim(namespace: string, name: string): PersistentVolumeClaim | undefined;
  volume(name: string): PersistentVolume | undefined;
  storageClass(name: string): StorageClass | undefined;
  volumes(): readonly PersistentVolume[];
}

export const REASON_VOLUME_NODE_CONFLICT = "node(s) had volume node affinity conflict";
export const REASON_NO_VOLUME = "node(s) didn't find available persistent volumes to bind";

/** Whether a volume's required nodeAffinity admits the node (no affinity: every node). */
export function volumeFitsNode(pv: PersistentVolume, node: Pick<NodeInfo, "name" | "labels">): boolean {
  const terms = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms;
  if (!terms) return true;
  return terms.some((t) => termMatches(t, node as NodeInfo));
}

/** The pod's claim names, in order, without repeats. */
export function podClaimNames(spec: { volumes: readonly { persistentVolumeClaim?: { claimName: string } }[] } | undefined): string[] {
  return [...new Set((spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [])))];
}

/** Whether an unbound claim waits for its first pod's node (its class says WaitForFirstConsumer). */
export function waitsForFirstConsumer(pvc: PersistentVolumeClaim, lister: Pick<VolumeLister, "storageClass">): StorageClass | undefined {
  const sc = lister.storageClass(claimClass(pvc));
  return sc?.volumeBindingMode === "WaitForFirstConsumer" ? sc : undefined;
}

export function volumeBindingFilter(lister: VolumeLister): FilterPlugin {
  return {
    name: "VolumeBinding",
    prepare(pod) {
      const names = podClaimNames(pod.pod.spec);
      if (names.length === 0) return undefined;
      const perNode: ((node: NodeInfo) => string | undefined)[] = [];
      for (const name of names) {
        const pvc = lister.claim(pod.namespace, name);
        if (!pvc) return () => [`persistentvolumeclaim "${name}" not found`];
        if (pvc.metadata?.deletionTimestamp) return () => [`persistentvolumeclaim "${name}" is being deleted`];
        const bound = pvc.spec?.volumeName ?? "";
        if (bound !== "") {
          const pv = lister.volume(bound);
          if (!pv) return () => [`persistentvolume "${bound}" of claim "${name}" not found`];
          perNode.push((node) => (volumeFitsNode(pv, node) ? undefined : REASON_VOLUME_NODE_CONFLICT));
          continue;
        }
        const sc = waitsForFirstConsumer(pvc, lister);
        if (!sc) return () => [`pod has unbound immediate PersistentVolumeClaims (claim "${name}" waits for a volume)`];
        if (sc.provisioner === LOCAL_PATH_PROVISIONER) continue;
        const volumes = lister.volumes();
        perNode.push((node) => (findVolumeFor(pvc, volumes, { nodeFits: (pv) => volumeFitsNode(pv, node) }) ? undefined : REASON_NO_VOLUME));
      }
      if (perNode.length === 0) return undefined;
      return (node) => {
        for (const check of perNode) {
          const r = check(node);
          if (r) return [r];
        }
        return undefined;
      };
    },
  };
}
