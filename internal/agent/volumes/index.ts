// The pod volumes of the node agent: one resolver per volume source, looked up in a table, each
// turning a pod's volume into a host path that containers bind-mount (see README.md).
import { join } from "node:path";
import type { Pod, Volume } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { volumeSources, type VolumeSourceName } from "../../api/volume-validation.ts";
import { forgetAtomicDirs, writeAtomicFiles, type AtomicFile } from "../atomic-dir.ts";
import { onMemoryFs } from "../file-ops.ts";
import { prepareEmptyDir, removeEmptyDir, sizeLimitExceeded } from "./empty-dir.ts";
import { prepareHostPath } from "./host-path.ts";
import { checkNoDuplicatePaths, DEFAULT_MODE, downwardFiles, keyFiles, VolumeMountError, type ObjectData } from "./projections.ts";
import { ensureTmpfs, SECRET_TMPFS_BYTES } from "./tmpfs.ts";
import { createTokenSource, type TokenRequester } from "./tokens.ts";
import type { ClaimVolumes } from "../pvc-volume.ts";

export { VolumeMountError } from "./projections.ts";


/** A prepared volume: where it is on the node, and whether containers may only read it. */
export interface VolumePath {
  hostPath: string;
  /** configMap, secret, downwardAPI and projected volumes are mounted read-only, as in Kubernetes. */
  readOnly: boolean;
}

export interface VolumeDeps {
  rootDir: string;
  /** A ConfigMap's or Secret's keys (binaryData too) as bytes; undefined when it does not exist. */
  readObject(kind: "ConfigMap" | "Secret", namespace: string, name: string): Promise<ObjectData>;
  /** A token of the pod's ServiceAccount bound to the pod (serviceAccountToken projections). */
  requestToken: TokenRequester;
  /** The node's allocatable resources (resourceFieldRef limits of containers that set none). */
  nodeAllocatable(): Record<string, string>;
  /**
   * Mount tmpfs for secrets, projected volumes and emptyDir Memory (a real node, as root). False:
   * plain directories (hollow nodes, unit tests: thousands of mounts would be the machine's).
   */
  tmpfs: boolean;
  now?: () => number;
  /** persistentVolumeClaim volumes (../pvc-volume.ts); absent: such volumes fail, saying so. */
  claims?: ClaimVolumes;
}

export interface VolumeManager {
  /**
   * Sets up every volume of the pod (again at every sync: contents follow their objects) and
   * returns the host path of each. Throws a VolumeMountError listing every volume that could not
   * be set up (the others are done); any other error is a bug or a node fault.
   */
  prepare(pod: Pod): Promise<Map<string, VolumePath>>;
  /** The eviction message when an emptyDir holds more than its sizeLimit. */
  sizeLimitExceeded(pod: Pod): Promise<string | undefined>;
  /** Removes the pod's emptyDir volumes (an evicted pod gives its space back). */
  removeEmptyDirs(pod: Pod): Promise<void>;
  /** Forgets the pod's tokens and written contents (its directory is being removed). */
  forget(uid: string): void;
  /** Where the pod's subPath mounts are pinned; undefined on hollow nodes (no mounts made). */
  subPathDir(uid: string): string | undefined;
}

interface ResolveContext {
  pod: Pod;
  volume: Volume;
  /** <pod dir>/volumes/<name>. */
  dir: string;
  /** A container mounts part of it by subPath: earlier versions of its files must stay. */
  subPathMounted: boolean;
}

type Resolver = (ctx: ResolveContext) => Promise<VolumePath>;

export function volumeDir(rootDir: string, uid: string, volume: string): string {
  return join(rootDir, "pods", uid, "volumes", volume);
}

export function createVolumeManager(deps: VolumeDeps): VolumeManager {
  const tokens = createTokenSource(deps.requestToken, deps.now);
  const ns = (pod: Pod) => pod.metadata!.namespace;
  const fsGroupOf = (pod: Pod) => (pod.spec?.securityContext?.fsGroup === undefined ? undefined : Number(pod.spec.securityContext.fsGroup));

  async function writeFiles(ctx: ResolveContext, files: AtomicFile[], onTmpfs: boolean): Promise<VolumePath> {
    if (onTmpfs && deps.tmpfs) await ensureTmpfs(ctx.dir, { sizeBytes: SECRET_TMPFS_BYTES });
    checkNoDuplicatePaths(files);
    const fsGroup = fsGroupOf(ctx.pod);
    // With an fsGroup the group reads every file, whatever the mode (kubelet's ownership rule).
    const owned = fsGroup === undefined ? files : files.map((f) => ({ ...f, mode: f.mode | 0o440 }));
    const memoryBacked = (onTmpfs && deps.tmpfs) || onMemoryFs(deps.rootDir);
    await writeAtomicFiles(ctx.dir, owned, { fsGroup, keepOldVersions: ctx.subPathMounted, memoryBacked });
    return { hostPath: ctx.dir, readOnly: true };
  }

  const RESOLVERS: Record<VolumeSourceName, Resolver> = {
    async emptyDir({ pod, volume, dir }) {
      return { hostPath: await prepareEmptyDir(pod, volume.emptyDir!, dir, deps.tmpfs), readOnly: false };
    },
    async hostPath({ volume }) {
      return { hostPath: await prepareHostPath(volume.hostPath!), readOnly: false };
    },
    async configMap(ctx) {
      const src = ctx.volume.configMap!;
      const data = await deps.readObject("ConfigMap", ns(ctx.pod), src.name);
      return writeFiles(ctx, keyFiles({ kind: "configmap", name: src.name, optional: src.optional }, data, src.items, src.defaultMode ?? DEFAULT_MODE), false);
    },
    async secret(ctx) {
      const src = ctx.volume.secret!;
      const data = await deps.readObject("Secret", ns(ctx.pod), src.secretName);
      return writeFiles(ctx, keyFiles({ kind: "secret", name: src.secretName, optional: src.optional }, data, src.items, src.defaultMode ?? DEFAULT_MODE), true);
    },
    async downwardAPI(ctx) {
      const src = ctx.volume.downwardApi!;
      return writeFiles(ctx, downwardFiles(ctx.pod, src.items, src.defaultMode ?? DEFAULT_MODE, deps.nodeAllocatable()), false);
    },
    async projected(ctx) {
      const src = ctx.volume.projected!;
      const mode = src.defaultMode ?? DEFAULT_MODE;
      const files: AtomicFile[] = [];
      for (const [i, s] of src.sources.entries()) {
        if (s.configMap) {
          const data = await deps.readObject("ConfigMap", ns(ctx.pod), s.configMap.name);
          files.push(...keyFiles({ kind: "configmap", name: s.configMap.name, optional: s.configMap.optional }, data, s.configMap.items, mode));
        } else if (s.secret) {
          const data = await deps.readObject("Secret", ns(ctx.pod), s.secret.name);
          files.push(...keyFiles({ kind: "secret", name: s.secret.name, optional: s.secret.optional }, data, s.secret.items, mode));
        } else if (s.downwardApi) {
          files.push(...downwardFiles(ctx.pod, s.downwardApi.items, mode, deps.nodeAllocatable()));
        } else if (s.serviceAccountToken) {
          const t = s.serviceAccountToken;
          const token = await tokens.get(ctx.pod, `${ctx.volume.name}/${i}`, t.audience, Number(t.expirationSeconds ?? 3600n));
          files.push({ path: t.path, data: token, mode });
        }
      }
      // Projected volumes may hold secrets and tokens: always on tmpfs.
      return writeFiles(ctx, files, true);
    },
    async persistentVolumeClaim({ pod, volume }) {
      const src = volume.persistentVolumeClaim!;
      if (!deps.claims) throw new VolumeMountError("persistentVolumeClaim volumes are not supported by this agent");
      return { hostPath: await deps.claims.resolve(pod, src), readOnly: src.readOnly };
    },
  };

  function subPathMounted(pod: Pod, name: string): boolean {
    return [...pod.spec!.initContainers, ...pod.spec!.containers].some((c) => c.volumeMounts.some((m) => m.name === name && (m.subPath !== "" || m.subPathExpr !== "")));
  }

  return {
    async prepare(pod) {
      const uid = pod.metadata!.uid;
      const out = new Map<string, VolumePath>();
      const failures: string[] = [];
      for (const volume of pod.spec?.volumes ?? []) {
        const [source] = volumeSources(volume);
        if (!source) throw new Error(`volume "${volume.name}" has no source`);
        try {
          out.set(volume.name, await RESOLVERS[source]({ pod, volume, dir: volumeDir(deps.rootDir, uid, volume.name), subPathMounted: subPathMounted(pod, volume.name) }));
        } catch (err) {
          if (!(err instanceof VolumeMountError)) throw err;
          failures.push(`MountVolume.SetUp failed for volume "${volume.name}" : ${err.message}`);
        }
      }
      if (failures.length > 0) throw new VolumeMountError(failures.join("; "));
      return out;
    },
    async sizeLimitExceeded(pod) {
      for (const v of pod.spec?.volumes ?? []) {
        if (!v.emptyDir) continue;
        const message = await sizeLimitExceeded(v.name, v.emptyDir, volumeDir(deps.rootDir, pod.metadata!.uid, v.name));
        if (message) return message;
      }
      return undefined;
    },
    async removeEmptyDirs(pod) {
      for (const v of pod.spec?.volumes ?? []) if (v.emptyDir) await removeEmptyDir(volumeDir(deps.rootDir, pod.metadata!.uid, v.name));
    },
    subPathDir: (uid) => (deps.tmpfs ? join(deps.rootDir, "pods", uid, "volume-subpaths") : undefined),
    forget(uid) {
      tokens.forget(uid);
      forgetAtomicDirs(join(deps.rootDir, "pods", uid));
    },
  };
}
