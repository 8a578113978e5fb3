// Generic operations on any kind, driven by its registry entry. The Connect services (service.ts)
// and internal callers (namespace cleanup) both go through these, so the semantics live once:
// defaulting, validation, optimistic concurrency, generation, status, graceful deletion.
import { create, equals, type Message } from "@bufbuild/protobuf";
import { cloneMessage } from "../api/codec/index.ts";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import { ConditionSchema, ObjectMetaSchema, type DeleteOptions } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { PodStatusSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { generateName } from "../api/names.ts";
import { ruleViolations } from "../api/protovalidate.ts";
import { getField, selectableFields, type ApiObject, type Kind } from "../api/registry.ts";
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, validateFieldSelector } from "../api/selector.ts";
import type { Violation } from "../api/validation.ts";
import { StoreError, type DeletedKeyValue, type Store, type TxnOp, type WrittenKeyValue } from "../storage/store.ts";
import { conflict, displayName, fromStoreError, invalid, notFound } from "./errors.ts";
import { listObjects, type ListResult, type PageRequest } from "./list.ts";
import { decode, encode, keyFor, objectKey, parseResourceVersion } from "./objects.ts";
import type { ObjectFilter, WatchCache } from "./watchcache.ts";
import type { AdmissionRequest } from "../auth/node/restriction.ts";
import type { UserInfo } from "../auth/types.ts";

export interface ResourceContext {
  store: Store;
  caches: Map<string, WatchCache>;
  /** Called after a delete marked an object whose kind removes it later (a Namespace: its contents must go). */
  onDeleting?: (name: string) => void;
  /** Storage writes that must commit together with the kind's objects (Service allocations). */
  hooks?: WriteHooks;
  /** Admission of a new object after defaulting: may change it, or refuse it with a ConnectError. */
  admit?: (obj: ApiObject) => Promise<void>;
  /**
   * Admission by who writes (node restriction, RBAC escalation check): throws PERMISSION_DENIED.
   * Runs for callers' writes only, after the kind's own admission.
   */
  admitWrite?: (req: AdmissionRequest) => void;
}

/**
 * Other keys written in the same transaction as an object, so that both commit or neither does.
 * create/update may fill fields of the object (allocated values) and throw user errors.
 */
export interface WriteHooks {
  /** `attempt` counts from 0: retries after a taken value may choose differently. */
  create(obj: ApiObject, attempt: number): Promise<TxnOp[]>;
  update(obj: ApiObject, old: ApiObject, attempt: number): Promise<TxnOp[]>;
  /** Writes that go with the object's removal. */
  remove(obj: ApiObject): Promise<TxnOp[]>;
  /**
   * The transaction failed because `key` (one of the hook's) already exists: the user's error when
   * `requested` (the object as the client sent it) asked for that value, else undefined = retry.
   */
  taken(requested: ApiObject, key: string): ConnectError | undefined;
}

/** How often a create or update picks again when its chosen values were taken meanwhile. */
const HOOK_ATTEMPTS = 20;

export type { ListResult, PageRequest } from "./list.ts";

export interface DeleteResult {
  obj: ApiObject;
  deleted: boolean;
}

export interface ResourceOps {
  kind: Kind;
  /** `user`: the caller (absent for the apiserver's own writes), for admission. */
  create(obj: ApiObject | undefined, dryRun?: boolean, user?: UserInfo): Promise<ApiObject>;
  get(namespace: string, name: string): Promise<ApiObject>;
  /** Everything, or one page of it (`page.limit`, `page.continue`). */
  list(namespace: string, labelSelector: string, fieldSelector: string, page?: PageRequest): Promise<ListResult>;
  update(obj: ApiObject | undefined, dryRun?: boolean, user?: UserInfo): Promise<ApiObject>;
  updateStatus(obj: ApiObject | undefined, user?: UserInfo): Promise<ApiObject>;
  delete(namespace: string, name: string, opts?: DeleteOptions): Promise<DeleteResult>;
  /** Builds the filter a watch or list applies; throws InvalidArgument for a bad selector. */
  filter(namespace: string, labelSelector: string, fieldSelector: string): ObjectFilter;
}

const handedOver = new WeakSet<object>();

/** Lets create/update/updateStatus change `obj` in place instead of copying it: the caller (the
 * service, with an object it just decoded from a request) never uses it again. */
export function handOver<T extends object | undefined>(obj: T): T {
  if (obj) handedOver.add(obj);
  return obj;
}

// Kubernetes marks these to hand deletion of dependents to the garbage collector.
const propagationFinalizers: Record<string, string> = { Foreground: "foregroundDeletion", Orphan: "orphan" };

export function createResourceOps(kind: Kind, ctx: ResourceContext): ResourceOps {
  const { store, hooks } = ctx;
  const label = kind.kind;

  function requireObject(obj: ApiObject | undefined): ApiObject {
    if (!obj) throw new ConnectError(`${kind.field}: required`, Code.InvalidArgument);
    // The operations change the object they are given: a copy, unless it was handed over.
    return handedOver.has(obj) ? obj : (cloneMessage(kind.schema, obj) as ApiObject);
  }

  function requireName(namespace: string, name: string): void {
    const v: Violation[] = [];
    if (name === "") v.push({ field: "name", message: "required" });
    if (kind.namespaced && namespace === "") v.push({ field: "namespace", message: "required" });
    if (v.length) throw invalid(`request for ${label}`, v);
  }

  // UpdateStatus changes the status only; the rest was checked when it was written.
  const statusField = kind.schema.fields.find((f) => f.localName === "status");
  function validateStatus(obj: ApiObject): void {
    const status = (obj as any).status;
    const rules =
      statusField?.fieldKind === "message" && status
        ? ruleViolations(statusField.message, status).map((v) => ({ ...v, field: v.field ? `status.${v.field}` : "status" }))
        : [];
    const v = [...rules, ...(kind.validateStatus?.(obj) ?? [])];
    if (v.length) throw invalid(`${label} "${displayName(obj.metadata?.name ?? "")}"`, v);
  }

  // UpdateStatus changes only the status (the metadata is a copy, the rest shared): comparing
  // that part finds a no-op without walking the spec (a pod's containers) on every status write.
  const statusSchema = statusField?.fieldKind === "message" ? statusField.message : undefined;
  function sameStatus(a: ApiObject, b: ApiObject): boolean {
    if (!statusSchema) return equals(kind.schema, a, b);
    const x = (a as { status?: Message }).status;
    const y = (b as { status?: Message }).status;
    if (x === y) return true;
    return x !== undefined && y !== undefined && equals(statusSchema, x, y);
  }

  function validate(obj: ApiObject, old?: ApiObject): void {
    const v = [...ruleViolations(kind.schema, obj), ...(kind.validate?.(obj, old) ?? [])];
    if (v.length) throw invalid(`${label} "${displayName(obj.metadata?.name || obj.metadata?.generateName || "")}"`, v);
  }

  async function read(namespace: string, name: string): Promise<ApiObject> {
    const kv = await store.get(keyFor(kind, namespace, name));
    if (!kv) throw notFound(label, name);
    return decode(kind, kv.value, kv.modRevision);
  }

  /** A Namespace from the watch cache, else from storage. */
  async function readNamespace(ns: string): Promise<ApiObject | undefined> {
    const nsKind = ctx.caches.get("Namespace")?.kind;
    if (!nsKind) return undefined;
    const key = keyFor(nsKind, "", ns);
    const cached = ctx.caches.get("Namespace")?.get(key);
    if (cached) return cached;
    const kv = await store.get(key);
    return kv ? decode(nsKind, kv.value, kv.modRevision) : undefined;
  }
  const admission = { namespace: readNamespace, objects: (k: string) => ctx.caches.get(k)?.list() ?? [] };

  /** The namespace must exist and accept new objects. */
  async function checkNamespace(ns: string): Promise<void> {
    if (!ctx.caches.get("Namespace")) return;
    const obj = await readNamespace(ns);
    if (!obj) throw new ConnectError(`namespace "${ns}" not found: create it first`, Code.NotFound);
    if (obj.metadata?.deletionTimestamp) {
      throw new ConnectError(`namespace "${ns}" is being deleted: no new objects may be created in it`, Code.FailedPrecondition);
    }
  }

  /** Everything but metadata and status: a change here is a change of "spec". */
  function specChanged(a: ApiObject, b: ApiObject): boolean {
    // Shallow copies without those two fields: nothing is cloned (this runs on every update).
    const strip = (o: ApiObject) => ({ ...o, metadata: undefined, ...(kind.hasStatus ? { status: undefined } : {}) }) as ApiObject;
    return !equals(kind.schema, strip(a), strip(b));
  }

  /** Writes obj (which the caller hands over) and returns it as stored, with its new version. */
  async function write(key: string, obj: ApiObject, modRevision: number, extra: TxnOp[] = []): Promise<ApiObject> {
    const value = encode(kind, obj);
    ctx.caches.get(kind.kind)?.noteWriting(key, obj);
    const kv =
      extra.length > 0
        ? ((await store.txn([{ op: "update", key, value, expectedModRevision: modRevision }, ...extra])).results[0] as WrittenKeyValue)
        : await store.update(key, value, modRevision);
    obj.metadata!.resourceVersion = String(kv.modRevision);
    ctx.caches.get(kind.kind)?.noteWritten(key, kv.modRevision, obj);
    return obj;
  }

  /** A hook's key was taken by a concurrent writer: the user's error, or pick again. */
  function hookConflict(err: unknown, requested: ApiObject, objKey: string, attempt: number): boolean {
    if (!hooks || !(err instanceof StoreError) || err.code !== "AlreadyExists" || !err.key || err.key === objKey) return false;
    const userError = hooks.taken(requested, err.key);
    if (userError) throw userError;
    if (attempt >= HOOK_ATTEMPTS) throw new ConnectError(`${label.toLowerCase()}: could not allocate after ${attempt} attempts under contention; retry`, Code.Unavailable);
    return true;
  }

  /** Removes an object for good, unless finalizers still hold it. */
  async function finish(obj: ApiObject): Promise<DeleteResult> {
    const rv = Number(obj.metadata!.resourceVersion);
    try {
      const extra = (await hooks?.remove(obj)) ?? [];
      if (extra.length > 0) {
        const { results } = await store.txn([{ op: "delete", key: objectKey(kind, obj), expectedModRevision: rv }, ...extra]);
        const kv = results[0] as DeletedKeyValue;
        return { obj: decode(kind, kv.value, kv.deleteRevision), deleted: true };
      }
      const kv = await store.delete(objectKey(kind, obj), rv);
      return { obj: decode(kind, kv.value, kv.deleteRevision), deleted: true };
    } catch (err) {
      throw fromStoreError(err, label, obj.metadata!.name);
    }
  }

  function mustFinishNow(obj: ApiObject): boolean {
    return obj.metadata!.deletionTimestamp !== undefined && obj.metadata!.finalizers.length === 0 && !kind.deletion?.waits(obj);
  }

  const ops: ResourceOps = {
    kind,

    filter(namespace, labelSelector, fieldSelector) {
      let labels, fields;
      try {
        labels = parseLabelSelector(labelSelector);
      } catch (e) {
        throw invalid("labelSelector", [{ field: "labelSelector", message: (e as Error).message }]);
      }
      try {
        fields = parseFieldSelector(fieldSelector);
      } catch (e) {
        throw invalid("fieldSelector", [{ field: "fieldSelector", message: (e as Error).message }]);
      }
      const unknown = validateFieldSelector(fields, selectableFields(kind));
      if (unknown.length) throw invalid("fieldSelector", unknown.map((message) => ({ field: "fieldSelector", message })));
      const ns = kind.namespaced ? namespace : "";
      const filter: ObjectFilter = (obj) =>
        (ns === "" || obj.metadata?.namespace === ns) &&
        matchesLabels(labels, obj.metadata?.labels ?? {}) &&
        matchesFields(fields, (f) => getField(kind, obj, f));
      const indexed = fields.requirements.find((r) => r.field === kind.watchIndex && r.operator === "Equals");
      if (indexed) filter.indexValue = indexed.value;
      return filter;
    },

    async create(input, dryRun = false, user) {
      const obj = requireObject(input);
      const m = (obj.metadata ??= create(ObjectMetaSchema));
      if (kind.namespaced && m.namespace === "") m.namespace = "default";
      const generated = m.name === "" && m.generateName !== "";
      if (generated) m.name = generateName(m.generateName);
      m.uid = randomUUID();
      m.resourceVersion = "";
      m.generation = 1n;
      m.creationTimestamp = timestampNow();
      m.deletionTimestamp = undefined;
      m.deletionGracePeriodSeconds = undefined;
      // Status is observed state: a client cannot create it (nodes excepted, whose agent registers
      // capacity with the node, as in Kubernetes).
      if (kind.hasStatus && !kind.statusOnCreate) obj.status = undefined;
      kind.defaults?.(obj);
      validate(obj);
      if (kind.namespaced) await checkNamespace(m.namespace);
      await ctx.admit?.(obj);
      await kind.admit?.(obj, undefined, { ...admission, user });
      if (user) ctx.admitWrite?.({ user, kind: kind.kind, operation: "create", object: obj });
      if (dryRun && !hooks) return obj;
      // What the client asked for, for the hooks' retries (only they change the object per attempt).
      const requested = hooks ? (cloneMessage(kind.schema, obj) as ApiObject) : obj;
      for (let attempt = 0; ; attempt++) {
        let extra: TxnOp[] = [];
        if (hooks) {
          // Each attempt starts from what the client asked for, not from the last attempt's picks.
          obj.spec = cloneMessage(kind.schema, requested).spec;
          extra = await hooks.create(obj, attempt);
          if (dryRun) return obj;
        }
        try {
          if (extra.length > 0) {
            const { results } = await store.txn([{ op: "create", key: objectKey(kind, obj), value: encode(kind, obj) }, ...extra]);
            return decode(kind, results[0].value, results[0].modRevision);
          }
          const value = encode(kind, obj);
          ctx.caches.get(kind.kind)?.noteWriting(objectKey(kind, obj), obj);
          const kv = await store.create(objectKey(kind, obj), value);
          m.resourceVersion = String(kv.modRevision);
          ctx.caches.get(kind.kind)?.noteWritten(kv.key, kv.modRevision, obj);
          return obj;
        } catch (err) {
          if (hookConflict(err, requested, objectKey(kind, obj), attempt)) continue;
          // A generated name that collides gets a new suffix, like Kubernetes.
          if (generated && err instanceof StoreError && err.code === "AlreadyExists" && attempt < 5) {
            m.name = generateName(m.generateName);
            continue;
          }
          throw fromStoreError(err, label, m.name);
        }
      }
    },

    async get(namespace, name) {
      if (kind.namespaced && namespace === "") namespace = "default";
      requireName(namespace, name);
      return read(namespace, name);
    },

    async list(namespace, labelSelector, fieldSelector, page) {
      const filter = ops.filter(namespace, labelSelector, fieldSelector);
      return listObjects(kind, store, namespace, filter, labelSelector !== "" || fieldSelector !== "", page);
    },

    async update(input, dryRun = false, user) {
      const obj = requireObject(input);
      const m = obj.metadata;
      if (!m) throw invalid(label, [{ field: "metadata", message: "required" }]);
      if (kind.namespaced && m.namespace === "") m.namespace = "default";
      requireName(m.namespace, m.name);
      // Versions are opaque: only the exact string the server gave matches ("004" is not "4").
      const wanted = checkedRv(m.resourceVersion, "metadata.resourceVersion");
      // What the client asked for, for the hooks' retries (only they change the object per attempt).
      const requested = hooks ? (cloneMessage(kind.schema, obj) as ApiObject) : obj;
      // Without a resource version the update is unconditional: retry races against other writers.
      for (let attempt = 0; ; attempt++) {
        // As in updateStatus: the watch cache's copy when it is the version the writer saw (a
        // Lease renewal, a controller's update); the write is conditional on that version, so a
        // stale copy can only fail with the conflict a storage read would have given.
        const cached = wanted !== undefined && attempt === 0 ? ctx.caches.get(kind.kind)?.get(keyFor(kind, m.namespace, m.name)) : undefined;
        const cur = cached && cached.metadata?.resourceVersion === wanted ? cached : await read(m.namespace, m.name);
        const cm = cur.metadata!;
        if (wanted !== undefined && wanted !== cm.resourceVersion) throw conflict(label, m.name);
        if (m.uid !== "" && m.uid !== cm.uid) {
          throw new ConnectError(`${label.toLowerCase()} "${m.name}": uid ${m.uid} does not match the stored object (${cm.uid})`, Code.Aborted);
        }
        // What the server owns is kept from the stored object.
        m.uid = cm.uid;
        m.creationTimestamp = cm.creationTimestamp;
        m.deletionTimestamp = cm.deletionTimestamp;
        m.deletionGracePeriodSeconds = cm.deletionGracePeriodSeconds;
        m.generation = cm.generation;
        m.generateName = cm.generateName;
        // A copy: the kind's defaults may fill it in place (a cleared phase), and `cur` may be the
        // watch cache's object, which is never changed.
        if (kind.hasStatus) obj.status = cur.status && statusSchema ? cloneMessage(statusSchema, cur.status as Message) : cur.status;
        if (hooks) obj.spec = cloneMessage(kind.schema, requested).spec;
        kind.defaults?.(obj);
        if (cm.deletionTimestamp && m.finalizers.some((f) => !cm.finalizers.includes(f))) {
          throw new ConnectError(`${label.toLowerCase()} "${m.name}" is being deleted: finalizers may only be removed`, Code.FailedPrecondition);
        }
        validate(obj, cur);
        await kind.admit?.(obj, cur, { ...admission, user });
        if (user) ctx.admitWrite?.({ user, kind: kind.kind, operation: "update", object: obj, oldObject: cur });
        const extra = hooks ? await hooks.update(obj, cur, attempt) : [];
        if (specChanged(obj, cur)) m.generation = cm.generation + 1n;
        m.resourceVersion = cm.resourceVersion;
        if (equals(kind.schema, obj, cur)) return cur; // a no-op update writes nothing
        if (dryRun) return obj;
        try {
          const stored = await write(objectKey(kind, obj), obj, Number(cm.resourceVersion), extra);
          // The last finalizer removed from an object being deleted lets it go.
          if (mustFinishNow(stored)) return (await finish(stored)).obj;
          return stored;
        } catch (err) {
          if (hookConflict(err, requested, objectKey(kind, obj), attempt)) continue;
          if (err instanceof StoreError && err.code === "Conflict" && wanted === undefined) continue;
          // One of the hook's own keys changed under us: read everything again.
          const hookKey = hooks && err instanceof StoreError && err.key !== undefined && err.key !== objectKey(kind, obj);
          if (hookKey && (err.code === "Conflict" || err.code === "NotFound") && attempt < HOOK_ATTEMPTS) continue;
          throw fromStoreError(err, label, m.name);
        }
      }
    },

    async updateStatus(input, user) {
      if (!kind.hasStatus) throw new ConnectError(`${label} has no status`, Code.Unimplemented);
      const obj = requireObject(input);
      const m = obj.metadata;
      if (!m) throw invalid(label, [{ field: "metadata", message: "required" }]);
      if (kind.namespaced && m.namespace === "") m.namespace = "default";
      requireName(m.namespace, m.name);
      const wanted = checkedRv(m.resourceVersion, "metadata.resourceVersion");
      for (;;) {
        // The watch cache's copy when it is the version the writer saw (the usual case): the write
        // below is conditional on that version, so a stale copy can only fail, never overwrite.
        const cached = wanted !== undefined ? ctx.caches.get(kind.kind)?.get(keyFor(kind, m.namespace, m.name)) : undefined;
        const cur = cached && cached.metadata?.resourceVersion === wanted ? cached : await read(m.namespace, m.name);
        if (wanted !== undefined && wanted !== cur.metadata!.resourceVersion) throw conflict(label, m.name);
        // Only metadata (its version is set on write) and the status are new; the rest is shared
        // with `cur`, which may be the watch cache's object and is never changed.
        const next = { ...cur, metadata: { ...cur.metadata! } } as ApiObject;
        // A status left out is an empty one (Kubernetes' status is a struct, never absent): what
        // reads it afterwards (Bind, the agent) may count on it.
        next.status = obj.status ?? (statusSchema ? create(statusSchema) : undefined);
        validateStatus(next);
        if (user) ctx.admitWrite?.({ user, kind: kind.kind, operation: "update", object: next, oldObject: cur });
        if (sameStatus(next, cur)) return cur;
        try {
          return await write(objectKey(kind, next), next, Number(cur.metadata!.resourceVersion));
        } catch (err) {
          if (err instanceof StoreError && err.code === "Conflict" && wanted === undefined) continue;
          throw fromStoreError(err, label, m.name);
        }
      }
    },

    async delete(namespace, name, opts) {
      if (kind.namespaced && namespace === "") namespace = "default";
      requireName(namespace, name);
      if (opts?.resourceVersion) checkedRv(opts.resourceVersion, "options.resourceVersion");
      for (;;) {
        const cur = await read(namespace, name);
        const m = cur.metadata!;
        if (opts?.resourceVersion && opts.resourceVersion !== m.resourceVersion) throw conflict(label, name);
        if (opts?.uid && opts.uid !== m.uid) {
          throw new ConnectError(`${label.toLowerCase()} "${name}": precondition failed: uid ${opts.uid} does not match ${m.uid}`, Code.Aborted);
        }
        const policy = opts?.propagationPolicy ?? "";
        if (policy !== "" && policy !== "Background" && !(policy in propagationFinalizers)) {
          throw invalid("delete options", [{ field: "options.propagationPolicy", message: `must be Background, Foreground or Orphan, got "${policy}"` }]);
        }
        const grace = opts?.gracePeriodSeconds;
        if (grace !== undefined && grace < 0n) {
          throw invalid("delete options", [{ field: "options.gracePeriodSeconds", message: "must be >= 0" }]);
        }
        const next = cloneMessage(kind.schema, cur) as ApiObject;
        const nm = next.metadata!;
        const finalizer = propagationFinalizers[policy];
        if (finalizer && !nm.finalizers.includes(finalizer) && !m.deletionTimestamp) nm.finalizers.push(finalizer);
        // The kind's deletion strategy marks first (graceful pods, terminating namespaces); other
        // objects go now, unless finalizers hold them.
        const marked = kind.deletion?.mark(next, grace) ?? false;
        if (!marked && nm.finalizers.length > 0) {
          nm.deletionTimestamp ??= timestampNow();
          nm.deletionGracePeriodSeconds ??= 0n;
        }
        if (marked ? !kind.deletion!.removedLater && mustFinishNow(next) : nm.finalizers.length === 0) {
          try {
            return await finish(cur);
          } catch (err) {
            if (err instanceof ConnectError && err.code === Code.Aborted && !opts?.resourceVersion) continue;
            throw err;
          }
        }
        if (equals(kind.schema, next, cur)) {
          if (kind.deletion?.removedLater) ctx.onDeleting?.(name);
          return { obj: cur, deleted: false };
        }
        try {
          const stored = await write(objectKey(kind, next), next, Number(m.resourceVersion));
          if (kind.deletion?.removedLater) ctx.onDeleting?.(name);
          return { obj: stored, deleted: false };
        } catch (err) {
          if (err instanceof StoreError && err.code === "Conflict" && !opts?.resourceVersion) continue;
          throw fromStoreError(err, label, name);
        }
      }
    },
  };

  /** A precondition version as the client sent it (undefined for none), refused if it cannot be one of ours. */
  function checkedRv(rv: string, field: string): string | undefined {
    try {
      return parseResourceVersion(rv) === undefined ? undefined : rv;
    } catch (e) {
      throw invalid(label, [{ field, message: (e as Error).message }]);
    }
  }

  return ops;
}

/** PodService.Bind: a conditional write that only an unbound, live pod accepts. */
export async function bindPod(
  ops: ResourceOps,
  store: Store,
  namespace: string,
  name: string,
  nodeName: string,
  uid: string,
  cache?: WatchCache,
): Promise<ApiObject> {
  if (namespace === "") namespace = "default";
  const v: Violation[] = [];
  if (name === "") v.push({ field: "name", message: "required" });
  if (nodeName === "") v.push({ field: "nodeName", message: "required" });
  if (v.length) throw invalid("bind request", v);
  // The watch cache's copy saves a storage read per bind; the write is conditional on its
  // revision, so a stale copy only costs a retry that reads storage.
  let cached = cache?.get(keyFor(ops.kind, namespace, name));
  for (;;) {
    const cur = cached ?? (await ops.get(namespace, name));
    cached = undefined;
    const pod = cur as any;
    if (uid !== "" && uid !== pod.metadata.uid) throw new ConnectError(`pod "${name}": uid ${uid} does not match ${pod.metadata.uid}`, Code.Aborted);
    if (pod.metadata.deletionTimestamp) throw new ConnectError(`pod "${name}" is being deleted`, Code.FailedPrecondition);
    if (pod.spec.nodeName !== "") {
      throw new ConnectError(`pod "${name}" is already bound to node "${pod.spec.nodeName}"`, Code.FailedPrecondition);
    }
    // New copies of what a binding changes (and of metadata, whose version the write sets); the
    // rest is shared with `cur`, which may be the watch cache's object and is never changed.
    // A pod stored before UpdateStatus filled an absent status has none: bind it all the same.
    const status = pod.status ?? create(PodStatusSchema);
    const conds = status.conditions.filter((c: { type: string }) => c.type !== "PodScheduled");
    conds.push(create(ConditionSchema, { type: "PodScheduled", status: "True", lastTransitionTime: timestampNow() }));
    const next = { ...pod, metadata: { ...pod.metadata }, spec: { ...pod.spec, nodeName }, status: { ...status, conditions: conds } };
    try {
      const value = encode(ops.kind, next);
      cache?.noteWriting(objectKey(ops.kind, next), next);
      const kv = await store.update(objectKey(ops.kind, next), value, Number(pod.metadata.resourceVersion));
      next.metadata.resourceVersion = String(kv.modRevision);
      cache?.noteWritten(kv.key, kv.modRevision, next);
      return next;
    } catch (err) {
      if (err instanceof StoreError && err.code === "Conflict") continue;
      throw fromStoreError(err, "Pod", name);
    }
  }
}
