// emptyDir volumes: a directory that lives as long as the pod, on the node's disk or, with
// `medium: Memory`, a tmpfs sized by its sizeLimit or else the pod's memory limit (the sum of its
// containers' limits, when every container has one). `sizeLimit` is enforced by measuring: a pod
// whose emptyDir holds more is evicted (the caller does it, at the next pod sync).
import { chmod, chown, mkdir, rm } from "node:fs/promises";
import type { EmptyDirVolumeSource, Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { quantityToBytes } from "../../api/quantity.ts";
import { diskUsage } from "../eviction/observe.ts";
import { ensureTmpfs, unmountUnder } from "./tmpfs.ts";

/** The pod's memory limit: the sum of its containers' limits, undefined when one has none. */
export function podMemoryLimit(pod: Pod): bigint | undefined {
  let sum = 0n;
  for (const c of pod.spec!.containers) {
    const l = c.resources?.limits?.memory;
    if (!l) return undefined;
    sum += quantityToBytes(l);
  }
  let init = 0n;
  for (const c of pod.spec!.initContainers) {
    const l = c.resources?.limits?.memory;
    if (l && quantityToBytes(l) > init) init = quantityToBytes(l);
  }
  return sum > init ? sum : init;
}

/** The size of a Memory emptyDir's tmpfs: the smaller of sizeLimit and the pod's memory limit. */
export function memoryVolumeSize(pod: Pod, src: EmptyDirVolumeSource): bigint | undefined {
  const limit = src.sizeLimit ? quantityToBytes(src.sizeLimit) : undefined;
  const pod_ = podMemoryLimit(pod);
  if (limit === undefined) return pod_;
  if (pod_ === undefined) return limit;
  return limit < pod_ ? limit : pod_;
}

/** Makes the volume's directory (or mounts its tmpfs); fsGroup owns a new one, setgid. */
export async function prepareEmptyDir(pod: Pod, src: EmptyDirVolumeSource, dir: string, tmpfs: boolean): Promise<string> {
  const made = await mkdir(dir, { recursive: true, mode: 0o777 });
  if (src.medium === "Memory" && tmpfs) await ensureTmpfs(dir, { sizeBytes: memoryVolumeSize(pod, src), mode: 0o777 });
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  // Once, when made: later syncs leave what the containers did to it alone.
  if (fsGroup !== undefined && made !== undefined) {
    // Kubernetes' fsGroup ownership: the group owns it, and setgid hands the group on to what is made inside.
    await chown(dir, 0, Number(fsGroup));
    await chmod(dir, 0o2777);
  }
  return dir;
}

/** The eviction message when the volume holds more than its sizeLimit; undefined otherwise. */
export async function sizeLimitExceeded(name: string, src: EmptyDirVolumeSource, dir: string): Promise<string | undefined> {
  if (!src.sizeLimit) return undefined;
  const used = await diskUsage(dir);
  if (used <= quantityToBytes(src.sizeLimit)) return undefined;
  return `Usage of EmptyDir volume "${name}" exceeds the limit "${src.sizeLimit}".`;
}

/** Unmounts (if Memory) and removes the volume's directory. */
export async function removeEmptyDir(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}
