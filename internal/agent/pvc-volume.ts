// persistentVolumeClaim volumes: claim → the volume bound to it → a directory on this node
// (hostPath or local), bind-mounted into the containers (read-only when the pod's volume says
// so). A claim that is missing or not bound yet fails the pod's sync (a FailedMount event);
// the pod worker retries, so the pod starts once the PV controller has bound the claim.
//
// local-path volumes (pinned here, in <root-dir>/storage): this agent makes their directories,
// here on mount and in local-path.ts as soon as the volume appears.
import { stat } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PersistentVolumeClaimVolumeSource, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { PersistentVolume, PersistentVolumeClaim } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { isLocalPath, pinnedNode } from "../api/storage.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import { ensureLocalPathDir } from "./local-path.ts";
import { VolumeMountError } from "./volumes/index.ts";

export interface ClaimVolumeOptions {
  nodeName: string;
  /** Where this agent keeps local-path volumes (<root-dir>/storage). */
  localPathDir: string;
  claims: ResourceClient<PersistentVolumeClaim>;
  volumes: ResourceClient<PersistentVolume>;
}

export interface ClaimVolumes {
  /** The host directory of the pod's claim; throws a VolumeMountError (the worker records FailedMount) while it cannot be had. */
  resolve(pod: Pod, source: PersistentVolumeClaimVolumeSource): Promise<string>;
}

export function createClaimVolumes(opts: ClaimVolumeOptions): ClaimVolumes {
  async function getOrUndefined<T>(read: Promise<T>): Promise<T | undefined> {
    try {
      return await read;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    }
  }

  async function hostPathOf(pod: Pod, source: PersistentVolumeClaimVolumeSource): Promise<string> {
    const ns = pod.metadata!.namespace;
    const pvc = await getOrUndefined(opts.claims.get(ns, source.claimName));
    if (!pvc) throw new VolumeMountError(`persistentvolumeclaim "${source.claimName}" not found`);
    if (pvc.metadata?.deletionTimestamp) throw new VolumeMountError(`persistentvolumeclaim "${source.claimName}" is being deleted`);
    const name = pvc.spec?.volumeName ?? "";
    if (name === "" || pvc.status?.phase !== "Bound") throw new VolumeMountError(`persistentvolumeclaim "${source.claimName}" is not bound yet (phase ${pvc.status?.phase || "Pending"})`);
    const pv = await getOrUndefined(opts.volumes.get("", name));
    if (!pv) throw new VolumeMountError(`persistentvolume "${name}" of claim "${source.claimName}" not found`);
    const pinned = pinnedNode(pv);
    if (pinned !== "" && pinned !== opts.nodeName) throw new VolumeMountError(`persistentvolume "${name}" is on node "${pinned}", not on this node`);
    const path = pv.spec?.hostPath?.path ?? pv.spec?.local?.path ?? "";
    if (path === "") throw new VolumeMountError(`persistentvolume "${name}" has no hostPath or local source`);
    if (isLocalPath(pv)) {
      await ensureLocalPathDir(opts.localPathDir, path);
      return path;
    }
    if (pv.spec?.hostPath?.type === "DirectoryOrCreate") {
      await ensureLocalPathDir("/", path);
      return path;
    }
    const st = await stat(path).catch(() => undefined);
    if (!st?.isDirectory()) throw new VolumeMountError(`persistentvolume "${name}": ${path} is not a directory on this node`);
    return path;
  }

  return { resolve: hostPathOf };
}
