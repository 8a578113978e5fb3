// A pod's ServiceAccount credentials (Kubernetes' kube-api-access projected volume), mounted
// read-only at /var/run/secrets/kubernetes.io/serviceaccount in every container unless
// automountServiceAccountToken is false (the admission copies the ServiceAccount's false in):
//
//   token      CreateToken for the pod's account, bound to the pod (it dies with the pod),
//              requested again once 80 % of its life has passed (checked at every pod sync)
//   ca.crt     the cluster CA this agent trusts (absent when the agent was given none)
//   namespace  the pod's namespace
//
// Written with the atomic writer (atomic-dir.ts) under <pod dir>/volumes/kube-api-access, a tmpfs.
import { decodeJwt } from "jose";
import * as fs from "node:fs";
import { promisify } from "node:util";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Mount } from "../runtime/runtime.ts";
import { writeAtomicDir } from "./atomic-dir.ts";
import { onMemoryFs } from "./file-ops.ts";
import { podDir } from "./pod-files.ts";
import { join } from "node:path";
import { ensureTmpfs, SECRET_TMPFS_BYTES } from "./volumes/tmpfs.ts";

// The callback form: read at every pod's first sync, where fs/promises' FileHandle costs more CPU.
const readFile = promisify(fs.readFile);

export const SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount";
export const TOKEN_EXPIRATION_SECONDS = 3600;
/** The share of a token's life after which a new one is requested (kubelet's 80 %). */
export const REFRESH_AT = 0.8;

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface TokenProjectorOptions {
  rootDir: string;
  /** CreateToken for the pod's account, bound to the pod (audiences: the apiserver's when absent). */
  requestToken(pod: Pod, expirationSeconds: number, audiences?: string[]): Promise<IssuedToken>;
  /** PEM of the cluster CA; absent: no ca.crt. */
  clusterCa?: string;
  /** The files on a tmpfs (a real node); false: a plain directory (hollow nodes, unit tests). */
  tmpfs?: boolean;
  now?: () => number;
}

export interface TokenProjector {
  /** Writes (or refreshes, when due) the pod's files; undefined when the pod mounts none. */
  ensure(pod: Pod): Promise<Mount | undefined>;
  forget(uid: string): void;
  /**
   * The pods whose directories were on disk when the agent started: only theirs can hold a token
   * an earlier agent wrote. Until this is called, every pod's directory is looked at.
   */
  foundOnDisk(uids: Iterable<string>): void;
}

export function automountsToken(pod: Pod): boolean {
  return pod.spec?.automountServiceAccountToken !== false;
}

/** When the token already written must be replaced, from its own iat/exp; undefined if none. */
async function dueOfWritten(path: string): Promise<number | undefined> {
  try {
    const { iat, exp } = decodeJwt(await readFile(path, "utf8"));
    if (iat === undefined || exp === undefined) return undefined;
    return (iat + (exp - iat) * REFRESH_AT) * 1000;
  } catch {
    return undefined;
  }
}

export function createTokenProjector(opts: TokenProjectorOptions): TokenProjector {
  const now = opts.now ?? Date.now;
  /** When each pod's token must be replaced (ms since the epoch). */
  const refreshAt = new Map<string, number>();
  let onDisk: Set<string> | undefined;
  return {
    async ensure(pod) {
      if (!automountsToken(pod)) return undefined;
      const uid = pod.metadata!.uid;
      const dir = join(podDir(opts.rootDir, uid), "volumes", "kube-api-access");
      const mount = { hostPath: dir, containerPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true };
      // After an agent restart the token on disk is kept while it is fresh enough: a restart must
      // not make every pod of the node ask for a new one at once.
      const earlier = onDisk === undefined || onDisk.has(uid);
      const due = refreshAt.get(uid) ?? (earlier ? await dueOfWritten(join(dir, "token")) : undefined);
      if (due !== undefined) refreshAt.set(uid, due);
      if (due !== undefined && now() < due) return mount;
      const issuedAt = now();
      const { token, expiresAt } = await opts.requestToken(pod, TOKEN_EXPIRATION_SECONDS);
      const files: Record<string, string> = { token, namespace: pod.metadata!.namespace };
      if (opts.clusterCa) files["ca.crt"] = opts.clusterCa;
      // A credential: in memory, never on the node's disk.
      if (opts.tmpfs) await ensureTmpfs(dir, { sizeBytes: SECRET_TMPFS_BYTES });
      // On its tmpfs, or in a data dir on one: synchronous calls (file-ops.ts). Written only when
      // a new token came: nothing to compare with the files already there.
      await writeAtomicDir(dir, files, 0o644, { memoryBacked: opts.tmpfs === true || onMemoryFs(opts.rootDir), skipUnchanged: false });
      refreshAt.set(uid, issuedAt + (expiresAt.getTime() - issuedAt) * REFRESH_AT);
      return mount;
    },
    forget(uid) {
      refreshAt.delete(uid);
      onDisk?.delete(uid);
    },
    foundOnDisk(uids) {
      onDisk = new Set(uids);
    },
  };
}
