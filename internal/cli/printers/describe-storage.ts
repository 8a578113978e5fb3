// `describe` pages of the storage kinds: StorageClass, PersistentVolume, PersistentVolumeClaim,
// with the fields `kubectl describe` shows for them.
import { DEFAULT_CLASS_ANNOTATION } from "../../api/storage.ts";
import { mapLines, type Field } from "./describe-layout.ts";

type Body = { fields: Field[]; after: string[] };

const modes = (list: string[] | undefined) => ((list ?? []).length ? list!.join(", ") : "<none>");

function nodeAffinityLines(pv: any): string[] {
  const terms: any[] = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? [];
  if (terms.length === 0) return ["<none>"];
  return terms.map((t, i) => {
    const reqs = [...(t.matchExpressions ?? []), ...(t.matchFields ?? [])].map((r: any) => `${r.key} ${r.operator.toLowerCase()} [${(r.values ?? []).join(", ")}]`);
    return `Term ${i}: ${reqs.join(", ")}`;
  });
}

function sourceFields(spec: any): Field[] {
  if (spec?.hostPath) return [["Type", "HostPath (bare host directory volume)"], ["Path", spec.hostPath.path], ["HostPathType", spec.hostPath.type || ""]];
  if (spec?.local) return [["Type", "LocalVolume (a persistent volume backed by local storage on a node)"], ["Path", spec.local.path]];
  return [["Type", "<unknown>"]];
}

export function describeStorageClass(sc: any): Body {
  return {
    fields: [
      ["IsDefaultClass", sc.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === "true" ? "Yes" : "No"],
      ["Provisioner", sc.provisioner ?? ""],
      ["Parameters", Object.keys(sc.parameters ?? {}).length ? mapLines(sc.parameters) : "<none>"],
      ["AllowVolumeExpansion", String(sc.allowVolumeExpansion ?? false)],
      ["MountOptions", (sc.mountOptions ?? []).length ? sc.mountOptions : "<none>"],
      ["ReclaimPolicy", sc.reclaimPolicy ?? ""],
      ["VolumeBindingMode", sc.volumeBindingMode ?? ""],
    ],
    after: [],
  };
}

export function describePersistentVolume(pv: any): Body {
  const ref = pv.spec?.claimRef;
  return {
    fields: [
      ["Finalizers", (pv.metadata?.finalizers ?? []).length ? `[${pv.metadata.finalizers.join(" ")}]` : "[]"],
      ["StorageClass", pv.spec?.storageClassName ?? ""],
      ["Status", pv.status?.phase ?? ""],
      ["Claim", ref?.name ? `${ref.namespace}/${ref.name}` : ""],
      ["Reclaim Policy", pv.spec?.persistentVolumeReclaimPolicy ?? ""],
      ["Access Modes", modes(pv.spec?.accessModes)],
      ["VolumeMode", pv.spec?.volumeMode ?? ""],
      ["Capacity", pv.spec?.capacity?.storage ?? ""],
      ["Node Affinity", nodeAffinityLines(pv)],
      ["Message", pv.status?.message ?? ""],
      ["Source", " ", sourceFields(pv.spec)],
    ],
    after: [],
  };
}

export function describePersistentVolumeClaim(pvc: any, usedBy: string[]): Body {
  return {
    fields: [
      ["StorageClass", pvc.spec?.storageClassName ?? ""],
      ["Status", pvc.status?.phase ?? ""],
      ["Volume", pvc.spec?.volumeName ?? ""],
      ["Finalizers", (pvc.metadata?.finalizers ?? []).length ? `[${pvc.metadata.finalizers.join(" ")}]` : "[]"],
      ["Capacity", pvc.status?.capacity?.storage ?? ""],
      ["Access Modes", modes(pvc.status?.accessModes)],
      ["VolumeMode", pvc.spec?.volumeMode ?? ""],
      ["Used By", usedBy.length ? usedBy : "<none>"],
    ],
    after: [],
  };
}
