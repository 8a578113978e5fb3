// After a restore, etcd's revision is the snapshot's, lower than what clients last saw. A client
// resuming a watch from its old resource version would then, once new writes reach that number,
// be answered from a different history and miss changes. So before the apiserver serves, the
// revision is carried past every revision the old data reached (plus a margin for writes its
// backend had not yet committed) and compacted there: every old resource version is then "too
// old" and its watch relists, as Kubernetes does after a restore (etcd 3.5's `--bump-revision
// --mark-compacted`; Debian's etcd 3.4 lacks them, so the revision is advanced with writes to one
// key outside the cluster's prefix).
import { Etcd3 } from "etcd3";
import type { EtcdConnection } from "./snapshot.ts";

/** Writes the old backend may have had in its WAL only (it commits every 100 ms / 10,000 writes). */
export const BUMP_MARGIN = 1000;
const KEY = "/.skiff-restore-revision";
const IN_FLIGHT = 64;

export interface BumpResult {
  from: number;
  to: number;
}

/** Advances etcd's revision past `previous + BUMP_MARGIN` and compacts there. */
export async function bumpRevision(conn: EtcdConnection, previous: number, onProgress?: (at: number, target: number) => void): Promise<BumpResult> {
  const client = new Etcd3({
    hosts: conn.endpoints,
    credentials: conn.tls ? { rootCertificate: Buffer.from(conn.tls.ca), certChain: Buffer.from(conn.tls.cert), privateKey: Buffer.from(conn.tls.key) } : undefined,
  });
  try {
    const revisionNow = async () => Number((await client.kv.range({ key: Buffer.from(KEY) })).header.revision);
    const from = await revisionNow();
    const target = previous + BUMP_MARGIN;
    let at = from;
    let lastReport = Date.now();
    while (at < target) {
      const batch = Math.min(IN_FLIGHT, target - at);
      const results = await Promise.all(Array.from({ length: batch }, () => client.kv.put({ key: Buffer.from(KEY), value: Buffer.from("") })));
      at = Math.max(...results.map((r) => Number(r.header.revision)));
      if (onProgress && Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        onProgress(at, target);
      }
    }
    const del = await client.kv.deleteRange({ key: Buffer.from(KEY) });
    const to = Number(del.header.revision);
    await client.kv.compact({ revision: String(to), physical: true });
    return { from, to };
  } finally {
    client.close();
  }
}
