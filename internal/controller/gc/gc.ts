// The garbage collector: deletes objects whose owners are gone, and carries out the Foreground and
// Orphan propagation policies that the apiserver records as finalizers on Delete. Generic over
// the kind registry: every kind is watched (the shared informers), and the owner graph is two
// informer indexes per kind, by uid and by owner uid. One reconcile per object, keyed
// "<Kind>:<namespace>/<name>" ("<Kind>:<name>" for cluster-scoped kinds).
//
//   object deleting, finalizer orphan ──────► drop its ownerReference from every dependent,
//                                             then remove the finalizer
//   object deleting, finalizer foregroundDeletion ─► queue every dependent; when no dependent
//                                             with blockOwnerDeletion is left, remove the finalizer
//   object with ownerReferences ─► classify each owner (cache, then a live Get before believing
//       it is absent):  solid (exists) · dangling (absent / other uid) · waiting (foreground-deleting)
//       all solid ─► nothing · some solid ─► drop the other references
//       none solid ─► delete it (Foreground when an owner is waiting, else Background), with uid
//                     and resourceVersion preconditions so a stale cache never deletes a changed object
import { cloneMessage } from "../../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import type { OwnerReference } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import { kindByName, kinds as allKinds, type ApiObject, type Kind } from "../../api/registry.ts";
import { keyOf, type Informer } from "../../client/informer.ts";
import { createResourceClient, type ResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";

export const FOREGROUND_FINALIZER = "foregroundDeletion";
export const ORPHAN_FINALIZER = "orphan";

export interface GarbageCollectorOptions {
  /** The kinds watched as owners and dependents. Default: every kind in the registry. */
  kinds: string[];
  workers: number;
}

const UID_INDEX = "gc:uid";
const OWNER_INDEX = "gc:ownerUid";

type OwnerState = "solid" | "dangling" | "waiting";

interface Watched {
  kind: Kind;
  informer: Informer<ApiObject>;
  client: ResourceClient<ApiObject>;
}

const codeOf = (err: unknown) => ConnectError.from(err).code;

function ensureIndexes(inf: Informer<ApiObject>): void {
  try {
    inf.indexKeys(UID_INDEX, "");
  } catch {
    inf.addIndexers({
      [UID_INDEX]: (o) => (o.metadata?.uid ? [o.metadata.uid] : []),
      [OWNER_INDEX]: (o) => (o.metadata?.ownerReferences ?? []).map((r) => r.uid),
    });
  }
}

/**
 * Whether what the collector cares for about an object (its owners, whether it is deleting, its
 * finalizers) is the same in both versions. Compared field by field: this runs for every update
 * of every watched object, most of them status writes.
 */
function sameGcState(a: ApiObject, b: ApiObject): boolean {
  const ma = a.metadata;
  const mb = b.metadata;
  if (!!ma?.deletionTimestamp !== !!mb?.deletionTimestamp) return false;
  const ra = ma?.ownerReferences ?? [];
  const rb = mb?.ownerReferences ?? [];
  if (ra.length !== rb.length) return false;
  for (let i = 0; i < ra.length; i++) {
    if (ra[i].uid !== rb[i].uid || (ra[i].blockOwnerDeletion ?? false) !== (rb[i].blockOwnerDeletion ?? false)) return false;
  }
  const fa = ma?.finalizers ?? [];
  const fb = mb?.finalizers ?? [];
  return fa.length === fb.length && fa.every((f, i) => f === fb[i]);
}

export function createGarbageCollector(ctx: ControllerContext, overrides: Partial<GarbageCollectorOptions> = {}): Controller {
  const log = ctx.log;
  const kindNames = overrides.kinds ?? allKinds.map((k) => k.kind);
  const watched = new Map<string, Watched>();
  for (const name of kindNames) {
    const kind = kindByName(name);
    if (!kind) throw new Error(`garbage collector: unknown kind "${name}"`);
    const informer = ctx.informers.informerFor<ApiObject>(kind.kind);
    ensureIndexes(informer);
    watched.set(kind.kind, { kind, informer, client: createResourceClient<ApiObject>(ctx.transport, kind) });
  }
  const clients = new Map<string, ResourceClient<ApiObject>>();
  const clientFor = (kind: Kind) => {
    let c = watched.get(kind.kind)?.client ?? clients.get(kind.kind);
    if (!c) clients.set(kind.kind, (c = createResourceClient<ApiObject>(ctx.transport, kind)));
    return c;
  };

  const controller = createController({
    name: "garbage-collector",
    log,
    workers: overrides.workers ?? Math.max(4, ctx.options?.concurrentSyncs ?? 0),
    reconcile,
  });

  const gcKey = (kind: string, o: ApiObject) => `${kind}:${keyOf(o)}`;

  /** Every watched object that names `uid` as an owner. */
  function dependents(uid: string): { w: Watched; obj: ApiObject }[] {
    const out: { w: Watched; obj: ApiObject }[] = [];
    for (const w of watched.values()) for (const obj of w.informer.byIndex(OWNER_INDEX, uid)) out.push({ w, obj });
    return out;
  }

  /** The key an owner reference points at, from the dependent's namespace. */
  function ownerKey(ref: OwnerReference, dependent: ApiObject): string | undefined {
    const k = kindByName(ref.kind);
    if (!k) return undefined;
    const ns = k.namespaced ? (dependent.metadata?.namespace ?? "") : "";
    return `${k.kind}:${ns ? `${ns}/` : ""}${ref.name}`;
  }

  const enqueueDependents = (o: ApiObject) => {
    if (o.metadata?.uid) for (const d of dependents(o.metadata.uid)) controller.enqueue(gcKey(d.w.kind.kind, d.obj));
  };
  const enqueueOwners = (o: ApiObject) => {
    for (const r of o.metadata?.ownerReferences ?? []) {
      const k = ownerKey(r, o);
      if (k) controller.enqueue(k);
    }
  };

  const offs: (() => void)[] = [];
  for (const w of watched.values()) {
    const kind = w.kind.kind;
    offs.push(
      w.informer.onAdd((o) => controller.enqueue(gcKey(kind, o))),
      w.informer.onUpdate((old, o) => {
        if (sameGcState(old, o)) return;
        controller.enqueue(gcKey(kind, o));
        enqueueDependents(o);
        // A foreground-deleting owner waits on these; a changed reference may release it.
        enqueueOwners(old);
        enqueueOwners(o);
      }),
      w.informer.onDelete((o) => {
        enqueueDependents(o);
        enqueueOwners(o);
      }),
    );
  }

  async function reconcile(key: string): Promise<Result> {
    const i = key.indexOf(":");
    const w = watched.get(key.slice(0, i));
    const obj = w?.informer.get(key.slice(i + 1));
    if (!w || !obj?.metadata) return;
    const m = obj.metadata;
    if (m.deletionTimestamp) {
      if (m.finalizers.includes(ORPHAN_FINALIZER)) return orphanDependents(w, obj);
      if (m.finalizers.includes(FOREGROUND_FINALIZER)) return deleteDependentsFirst(w, obj);
      return; // already going
    }
    if (m.ownerReferences.length > 0) return collectIfOrphaned(w, obj);
  }

  /** Orphan: the dependents lose their reference to this owner, then the owner may go. */
  async function orphanDependents(w: Watched, owner: ApiObject): Promise<Result> {
    const uid = owner.metadata!.uid;
    for (const d of dependents(uid)) {
      const next = cloneMessage(d.w.kind.schema, d.obj) as ApiObject;
      next.metadata!.ownerReferences = next.metadata!.ownerReferences.filter((r) => r.uid !== uid);
      await write(() => d.w.client.update(next));
    }
    await removeFinalizer(w, owner, ORPHAN_FINALIZER);
    log.debug({ owner: gcKey(w.kind.kind, owner) }, "orphaned dependents");
  }

  /** Foreground: dependents go first (each decides in its own reconcile); then the owner. */
  async function deleteDependentsFirst(w: Watched, owner: ApiObject): Promise<Result> {
    const uid = owner.metadata!.uid;
    let blocking = 0;
    for (const d of dependents(uid)) {
      const ref = d.obj.metadata!.ownerReferences.find((r) => r.uid === uid);
      if (ref?.blockOwnerDeletion) blocking++;
      if (!d.obj.metadata!.deletionTimestamp) controller.enqueue(gcKey(d.w.kind.kind, d.obj));
    }
    // Still blocked: the dependents' deletions (or changed references) queue this owner again.
    if (blocking > 0) return;
    await removeFinalizer(w, owner, FOREGROUND_FINALIZER);
    log.debug({ owner: gcKey(w.kind.kind, owner) }, "dependents gone; foreground deletion done");
  }

  async function collectIfOrphaned(w: Watched, obj: ApiObject): Promise<Result> {
    const m = obj.metadata!;
    const states = await Promise.all(m.ownerReferences.map((r) => ownerState(r, obj)));
    const solid = m.ownerReferences.filter((_r, i) => states[i] === "solid");
    if (solid.length === m.ownerReferences.length) return;
    if (solid.length > 0) {
      // Another owner still holds it: only the references to owners that are going are dropped.
      const next = cloneMessage(w.kind.schema, obj) as ApiObject;
      next.metadata!.ownerReferences = solid;
      await write(() => w.client.update(next));
      return;
    }
    // Under a foreground-deleting owner the cascade stays foreground, for objects that have
    // dependents of their own (a leaf has nothing to wait for: no finalizer round trip).
    const policy = states.includes("waiting") && dependents(m.uid).length > 0 ? "Foreground" : "Background";
    log.info({ object: gcKey(w.kind.kind, obj), policy }, "deleting object whose owners are gone");
    await write(() => w.client.delete(m.namespace, m.name, { uid: m.uid, resourceVersion: m.resourceVersion, propagationPolicy: policy }));
  }

  /** Whether an owner exists: the cache first; absence is confirmed with a live Get. */
  async function ownerState(ref: OwnerReference, dependent: ApiObject): Promise<OwnerState> {
    const kind = kindByName(ref.kind);
    // A kind we do not know, or a namespaced owner of a cluster-scoped object, cannot be judged:
    // keep the object (never delete on a guess).
    if (!kind || (kind.namespaced && !dependent.metadata?.namespace)) return "solid";
    const ns = kind.namespaced ? dependent.metadata!.namespace : "";
    const cached = watched.get(kind.kind)?.informer.byIndex(UID_INDEX, ref.uid)[0];
    let owner: ApiObject | undefined = cached;
    if (!owner) {
      try {
        owner = await clientFor(kind).get(ns, ref.name);
      } catch (err) {
        if (codeOf(err) !== Code.NotFound) throw err;
      }
      if (!owner || owner.metadata?.uid !== ref.uid) return "dangling";
    }
    const om = owner.metadata!;
    return om.deletionTimestamp && om.finalizers.includes(FOREGROUND_FINALIZER) ? "waiting" : "solid";
  }

  /** Removes a finalizer from the live object (the last one removed lets the apiserver delete it). */
  async function removeFinalizer(w: Watched, obj: ApiObject, finalizer: string): Promise<void> {
    const m = obj.metadata!;
    let live: ApiObject;
    try {
      live = await w.client.get(m.namespace, m.name);
    } catch (err) {
      if (codeOf(err) === Code.NotFound) return;
      throw err;
    }
    if (live.metadata!.uid !== m.uid || !live.metadata!.finalizers.includes(finalizer)) return;
    const next = cloneMessage(w.kind.schema, live) as ApiObject;
    next.metadata!.finalizers = next.metadata!.finalizers.filter((f) => f !== finalizer);
    await write(() => w.client.update(next));
  }

  return {
    ...controller,
    async stop() {
      for (const off of offs.splice(0)) off();
      await controller.stop();
    },
  };
}

/**
 * Runs a write; an object already gone is fine. A failed precondition (stale resourceVersion or a
 * new uid) throws, so the key is retried against a fresher cache.
 */
async function write(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (codeOf(err) !== Code.NotFound) throw err;
  }
}
