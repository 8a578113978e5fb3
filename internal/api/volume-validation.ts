// Semantic checks of a pod's volumes and volume mounts that the .proto rules cannot say: one
// source per volume, one source per projection, file paths that stay inside the volume, the
// downward API fields the node agent can write.
import type { DownwardAPIVolumeFile, KeyToPath, Volume, VolumeMount } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { FieldViolation } from "./names.ts";
import { parseQuantity } from "./quantity.ts";

/** The volume sources, by their JSON names: exactly one is set. */
export const VOLUME_SOURCES = ["emptyDir", "hostPath", "configMap", "secret", "persistentVolumeClaim", "downwardAPI", "projected"] as const;
export type VolumeSourceName = (typeof VOLUME_SOURCES)[number];

const FIELD_OF: Record<VolumeSourceName, keyof Volume> = {
  emptyDir: "emptyDir",
  hostPath: "hostPath",
  configMap: "configMap",
  secret: "secret",
  persistentVolumeClaim: "persistentVolumeClaim",
  downwardAPI: "downwardApi",
  projected: "projected",
};

/** The sources a volume sets (one when valid). */
export function volumeSources(v: Volume): VolumeSourceName[] {
  return VOLUME_SOURCES.filter((s) => v[FIELD_OF[s]] !== undefined);
}

/** The pod fields a downwardAPI file may name (besides labels['k'] and annotations['k']). */
export const DOWNWARD_FIELDS = new Set(["metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"]);
/** The resources a resourceFieldRef may name. */
export const DOWNWARD_RESOURCES = new Set(["limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"]);

/** A path inside a volume: relative, no ".." element, not empty. */
export function relativePathProblems(p: string): string[] {
  if (p === "") return ["required"];
  if (p.startsWith("/")) return ["must be a relative path"];
  if (p.split("/").includes("..")) return ["must not contain '..'"];
  return [];
}

function keyPaths(items: KeyToPath[], path: string): FieldViolation[] {
  return items.flatMap((it, i) => relativePathProblems(it.path).map((message) => ({ field: `${path}.items[${i}].path`, message })));
}

function downwardFiles(items: DownwardAPIVolumeFile[], path: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  items.forEach((f, i) => {
    const p = `${path}.items[${i}]`;
    for (const message of relativePathProblems(f.path)) out.push({ field: `${p}.path`, message });
    if (!!f.fieldRef === !!f.resourceFieldRef) out.push({ field: p, message: "exactly one of fieldRef and resourceFieldRef must be set" });
    const fp = f.fieldRef?.fieldPath;
    if (fp !== undefined && !DOWNWARD_FIELDS.has(fp) && !/^metadata\.(labels|annotations)\['.+'\]$/.test(fp)) {
      out.push({ field: `${p}.fieldRef.fieldPath`, message: `unsupported value "${fp}": supported are ${[...DOWNWARD_FIELDS].join(", ")}, metadata.labels['<key>'], metadata.annotations['<key>']` });
    }
    const r = f.resourceFieldRef;
    if (r) {
      if (!DOWNWARD_RESOURCES.has(r.resource)) out.push({ field: `${p}.resourceFieldRef.resource`, message: `unsupported value "${r.resource}": supported are ${[...DOWNWARD_RESOURCES].join(", ")}` });
      if (r.containerName === "") out.push({ field: `${p}.resourceFieldRef.containerName`, message: "required in a volume" });
      if (r.divisor !== "") {
        try {
          if (parseQuantity(r.divisor).milliValue <= 0n) out.push({ field: `${p}.resourceFieldRef.divisor`, message: "must be greater than zero" });
        } catch {
          out.push({ field: `${p}.resourceFieldRef.divisor`, message: `"${r.divisor}" is not a quantity` });
        }
      }
    }
  });
  return out;
}

/** Checks one volume at `path` (spec.volumes[i]); `containers` are the pod's container names. */
export function validateVolume(v: Volume, path: string, containers: Set<string>): FieldViolation[] {
  const out: FieldViolation[] = [];
  if (volumeSources(v).length !== 1) out.push({ field: path, message: `exactly one volume source must be set (${VOLUME_SOURCES.join(", ")})` });
  if (v.configMap) out.push(...keyPaths(v.configMap.items, `${path}.configMap`));
  if (v.secret) out.push(...keyPaths(v.secret.items, `${path}.secret`));
  if (v.downwardApi) out.push(...downwardFiles(v.downwardApi.items, `${path}.downwardAPI`));
  if (v.emptyDir?.sizeLimit) {
    try {
      parseQuantity(v.emptyDir.sizeLimit);
    } catch {
      out.push({ field: `${path}.emptyDir.sizeLimit`, message: `"${v.emptyDir.sizeLimit}" is not a quantity` });
    }
  }
  v.projected?.sources.forEach((s, j) => {
    const p = `${path}.projected.sources[${j}]`;
    const set = [s.secret, s.configMap, s.downwardApi, s.serviceAccountToken].filter(Boolean).length;
    if (set !== 1) out.push({ field: p, message: "exactly one of secret, configMap, downwardAPI, serviceAccountToken must be set" });
    if (s.secret) out.push(...keyPaths(s.secret.items, `${p}.secret`));
    if (s.configMap) out.push(...keyPaths(s.configMap.items, `${p}.configMap`));
    if (s.downwardApi) out.push(...downwardFiles(s.downwardApi.items, `${p}.downwardAPI`));
    const t = s.serviceAccountToken;
    if (t) {
      for (const message of relativePathProblems(t.path)) out.push({ field: `${p}.serviceAccountToken.path`, message });
      if (t.expirationSeconds !== undefined && (t.expirationSeconds < 600n || t.expirationSeconds > 2n ** 32n)) {
        out.push({ field: `${p}.serviceAccountToken.expirationSeconds`, message: "must be at least 600 (10 minutes) and at most 4294967296" });
      }
    }
  });
  const refs = [...(v.downwardApi?.items ?? []), ...(v.projected?.sources.flatMap((s) => s.downwardApi?.items ?? []) ?? [])];
  for (const f of refs) {
    const name = f.resourceFieldRef?.containerName;
    if (name && !containers.has(name)) out.push({ field: `${path}`, message: `resourceFieldRef names container "${name}", which the pod does not have` });
  }
  return out;
}

/** Checks a volumeMount's subPath / subPathExpr at `path` (…volumeMounts[i]). */
export function validateSubPath(m: VolumeMount, path: string): FieldViolation[] {
  const out: FieldViolation[] = [];
  if (m.subPath !== "" && m.subPathExpr !== "") out.push({ field: `${path}.subPathExpr`, message: "subPath and subPathExpr are mutually exclusive" });
  for (const [field, value] of [["subPath", m.subPath], ["subPathExpr", m.subPathExpr]] as const) {
    if (value === "") continue;
    for (const message of relativePathProblems(value)) out.push({ field: `${path}.${field}`, message });
  }
  return out;
}
