// The agent's half of the local-path provisioner: it announces <root-dir>/storage on its Node
// (annotation skiff.io/local-path-dir, agent.ts), watches the volumes pinned to its node
// (fieldSelector spec.nodeAffinity.nodeName=<node>, which the node authorizer allows), makes the
// directory of each local-path volume, and once such a volume is being deleted removes its
// directory and then the volume's skiff.io/local-path-cleanup finalizer (the only change node
// restriction lets a node make to a volume). Capacity is recorded on the volume, not enforced.
import { chmod, mkdir, rm } from "node:fs/promises";
import { relative, resolve, sep } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PersistentVolume } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { isLocalPath, LOCAL_PATH_CLEANUP_FINALIZER, PINNED_NODE_FIELD } from "../api/storage.ts";
import { createInformer, type Informer } from "../client/informer.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import { componentLog, type Logger } from "../log/log.ts";

/** Whether `path` is strictly inside `dir` (no "..", not dir itself). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel !== "" && !rel.startsWith("..") && !rel.startsWith(sep) && rel !== "..";
}

/** Makes a volume directory inside `dir` (mode 0777: any container user may write, as k3s does). */
export async function ensureLocalPathDir(dir: string, path: string): Promise<void> {
  if (dir !== "/" && !isInside(dir, path)) throw new Error(`${path} is outside this node's local-path directory ${dir}`);
  const made = await mkdir(path, { recursive: true, mode: 0o777 });
  // mkdir's mode passes through the umask: set it once, when made.
  if (made !== undefined) await chmod(path, 0o777);
}

export interface LocalPathAgentOptions {
  nodeName: string;
  /** <root-dir>/storage */
  dir: string;
  volumes: ResourceClient<PersistentVolume>;
  log: Logger;
}

export interface LocalPathAgent {
  start(signal: AbortSignal): void;
  stop(): Promise<void>;
}

export function createLocalPathAgent(opts: LocalPathAgentOptions): LocalPathAgent {
  const { log } = opts;
  // The resync retries what failed (a directory not removable yet, a conflicting update).
  const informer: Informer<PersistentVolume> = createInformer(opts.volumes, {
    fieldSelector: `${PINNED_NODE_FIELD}=${opts.nodeName}`,
    resyncMs: 10_000,
    log: componentLog(log, "local-path"),
  });
  const running = new Map<string, Promise<void>>();

  async function sync(pv: PersistentVolume): Promise<void> {
    const path = pv.spec?.hostPath?.path ?? "";
    if (!isLocalPath(pv) || !isInside(opts.dir, path)) return;
    if (!pv.metadata!.deletionTimestamp) {
      await ensureLocalPathDir(opts.dir, path);
      return;
    }
    if (!pv.metadata!.finalizers.includes(LOCAL_PATH_CLEANUP_FINALIZER)) return;
    await rm(path, { recursive: true, force: true });
    log.info({ volume: pv.metadata!.name, path }, "removed the directory of a deleted local-path volume");
    const next = structuredClone(pv);
    next.metadata!.finalizers = pv.metadata!.finalizers.filter((f) => f !== LOCAL_PATH_CLEANUP_FINALIZER);
    try {
      await opts.volumes.update(next);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.NotFound) throw err;
    }
  }

  // One sync per volume at a time, each of the newest copy the informer has.
  const handle = (pv: PersistentVolume) => {
    const name = pv.metadata!.name;
    const next = (running.get(name) ?? Promise.resolve())
      .then(() => {
        const latest = informer.get(name);
        return latest ? sync(latest) : undefined;
      })
      .catch((err) => log.warn({ volume: name, err: String(err) }, "local-path volume sync failed"))
      .finally(() => {
        if (running.get(name) === next) running.delete(name);
      });
    running.set(name, next);
  };
  informer.onAdd(handle);
  informer.onUpdate((_old, pv) => handle(pv));

  return {
    start(signal) {
      informer.start(signal);
    },
    stop: () => informer.stop(),
  };
}
