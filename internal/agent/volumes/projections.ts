// The files of configMap, secret, downwardAPI and projected volumes: what each key, field or token
// becomes (path, bytes, mode). Pure: the objects and tokens are read by the caller.
import type { DownwardAPIVolumeFile, KeyToPath, Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { AtomicFile } from "../atomic-dir.ts";
import { resourceFieldValue, volumeFieldValue } from "./downward.ts";

/** Kubernetes' default file mode of these volumes (0644). */
export const DEFAULT_MODE = 0o644;

/** A volume cannot be set up now (a missing object, a hostPath of the wrong type): FailedMount, tried again. */
export class VolumeMountError extends Error {
  override name = "VolumeMountError";
}

/** Keys of a ConfigMap or Secret as bytes; undefined when the object does not exist. */
export type ObjectData = Record<string, Uint8Array> | undefined;

/**
 * The files of one ConfigMap or Secret: every key (keys named by `items` only, at their paths).
 * A missing object gives no files when optional and fails otherwise; so does a missing item key.
 */
export function keyFiles(
  what: { kind: "configmap" | "secret"; name: string; optional?: boolean },
  data: ObjectData,
  items: KeyToPath[],
  defaultMode: number,
): AtomicFile[] {
  if (!data) {
    if (what.optional) return [];
    throw new VolumeMountError(`${what.kind} "${what.name}" not found`);
  }
  if (items.length === 0) return Object.entries(data).map(([key, bytes]) => ({ path: key, data: bytes, mode: defaultMode }));
  const out: AtomicFile[] = [];
  for (const it of items) {
    const bytes = data[it.key];
    if (bytes === undefined) {
      if (what.optional) continue;
      throw new VolumeMountError(`${what.kind === "configmap" ? "configmap" : "secret"} "${what.name}" has no key "${it.key}" (named in items)`);
    }
    out.push({ path: it.path, data: bytes, mode: it.mode ?? defaultMode });
  }
  return out;
}

/** The files of a downwardAPI volume or projection. */
export function downwardFiles(pod: Pod, items: DownwardAPIVolumeFile[], defaultMode: number, nodeAllocatable: Record<string, string>): AtomicFile[] {
  return items.map((f) => ({
    path: f.path,
    data: f.fieldRef ? volumeFieldValue(pod, f.fieldRef.fieldPath) : resourceFieldValue(pod, f.resourceFieldRef!, nodeAllocatable),
    mode: f.mode ?? defaultMode,
  }));
}

/** Two sources of a projected volume writing the same path is the user's mistake: say which. */
export function checkNoDuplicatePaths(files: AtomicFile[]): void {
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw new VolumeMountError(`two sources project the same path "${f.path}"`);
    seen.add(f.path);
  }
}
