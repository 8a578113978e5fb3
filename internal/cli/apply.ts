// Create-or-update of one decoded manifest object.
//
// The object is read first: absent -> create; present -> update with the server's resource
// version (a conflict re-reads and retries), its status untouched, and the fields the server and
// controllers own carried over when the manifest leaves them out (uid, finalizers, owner
// references, system annotations, a service's cluster IP and node ports, a pod's node and what
// the ServiceAccount admission filled in). The
// server writes nothing for an update that changes nothing, so "unchanged" is decided by
// comparing the stored object before and after.
import { clone, equals } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiObject, Kind } from "../api/registry.ts";
import type { ResourceClient } from "../client/resource-client.ts";

export type ApplyResult = "created" | "configured" | "unchanged";

export interface ApplyOptions {
  dryRun?: boolean;
}

// Annotations under these domains are written by the system, not by the manifest's author.
const SYSTEM_ANNOTATION = /^([a-z0-9.-]+\.)?(kubernetes\.io|k8s\.io|skiff\.io)\//;

/** Copies what the server or controllers own from `cur` into `next` (in place). */
export function carryServerFields(kind: Kind, next: ApiObject, cur: ApiObject): void {
  const m = next.metadata!;
  const cm = cur.metadata!;
  m.resourceVersion = cm.resourceVersion;
  m.uid = cm.uid;
  if (m.finalizers.length === 0) m.finalizers = [...cm.finalizers];
  if (m.ownerReferences.length === 0) m.ownerReferences = [...cm.ownerReferences];
  for (const [k, v] of Object.entries(cm.annotations)) {
    if (SYSTEM_ANNOTATION.test(k) && !(k in m.annotations)) m.annotations[k] = v;
  }
  if (kind.hasStatus) next.status = cur.status;
  const spec = (next as any).spec;
  const curSpec = (cur as any).spec;
  if (!spec || !curSpec) return;
  if (kind.kind === "Service") {
    if (spec.clusterIp === "") spec.clusterIp = curSpec.clusterIp;
    if (spec.clusterIps.length === 0) spec.clusterIps = [...curSpec.clusterIps];
    for (const p of spec.ports) {
      if (p.nodePort !== 0) continue;
      const old = curSpec.ports.find((o: any) => o.port === p.port && (o.protocol || "TCP") === (p.protocol || "TCP"));
      if (old) p.nodePort = old.nodePort;
    }
  }
  if (kind.kind === "Pod") {
    if (spec.nodeName === "") spec.nodeName = curSpec.nodeName;
    // Filled in by the ServiceAccount admission when the pod was created.
    if (spec.serviceAccountName === "") spec.serviceAccountName = curSpec.serviceAccountName;
    if (spec.automountServiceAccountToken === undefined) spec.automountServiceAccountToken = curSpec.automountServiceAccountToken;
    if (spec.imagePullSecrets.length === 0) spec.imagePullSecrets = [...curSpec.imagePullSecrets];
  }
}

function isCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

/** Applies one object (namespace already filled in). Returns what happened and the stored object. */
export async function applyObject(
  client: ResourceClient,
  obj: ApiObject,
  opts: ApplyOptions = {},
): Promise<{ result: ApplyResult; object: ApiObject }> {
  const kind = client.kind;
  const ns = obj.metadata?.namespace ?? "";
  const name = obj.metadata?.name ?? "";
  for (let attempt = 0; ; attempt++) {
    let cur: ApiObject | undefined;
    try {
      cur = await client.get(ns, name);
    } catch (err) {
      if (!isCode(err, Code.NotFound)) throw err;
    }
    try {
      if (!cur) {
        const fresh = clone(kind.schema, obj) as ApiObject;
        if (kind.hasStatus) fresh.status = undefined; // status is observed, never applied
        const created = await client.create(fresh, { dryRun: opts.dryRun });
        return { result: "created", object: created };
      }
      const next = clone(kind.schema, obj) as ApiObject;
      carryServerFields(kind, next, cur);
      const stored = await client.update(next, { dryRun: opts.dryRun });
      return { result: equals(kind.schema, cur, stored) ? "unchanged" : "configured", object: stored };
    } catch (err) {
      // Someone else wrote in between (conflict), or created/deleted it: read again.
      const raced = isCode(err, Code.Aborted) || isCode(err, Code.AlreadyExists) || (cur !== undefined && isCode(err, Code.NotFound));
      if (raced && attempt < 4) continue;
      throw err;
    }
  }
}
