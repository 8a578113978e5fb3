// Store on etcd v3 through the `etcd3` npm package. We use its raw KV client (range/txn/compact
// requests as etcd defines them) rather than its builders, so that every request states its
// revision semantics explicitly; the watch side lives in etcd-watch.ts.

import { Etcd3, type ICompare, type IKeyValue, type IOptions, type IRequestOp } from "etcd3";
import { isCompactedError, isFutureRevisionError, mapEtcdError } from "./etcd-errors.ts";
import { bytes, prefixRange } from "./etcd-keys.ts";
import { createEtcdWatchFactory } from "./etcd-watch.ts";
import {
  assertDistinctKeys,
  assertRevision,
  preconditionError,
  StoreError,
  type DeletedKeyValue,
  type KeyValue,
  type Store,
  type TxnOp,
  type TxnResult,
} from "./store.ts";

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Prepended to every key, e.g. "/skiff" (keys are then "/skiff/pods/…"). Default "". */
  prefix?: string;
  /** Deadline for each unary request. Default 10s. */
  requestTimeoutMs?: number;
}

// etcd3's default fault handling retries failed calls up to 3 times and opens a 5s circuit
// breaker after 3 failures. Retrying a txn whose reply was lost can turn a success into
// AlreadyExists/Conflict, and the breaker keeps /readyz red after etcd is back, so both are
// off: a failed call surfaces as Unavailable and the caller decides.
const noRetry = { execute: async (fn: (ctx: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };
type FaultHandling = NonNullable<IOptions["faultHandling"]>;

export function createEtcdStore(opts: EtcdStoreOptions): Store {
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const root = Buffer.from(opts.prefix ?? "", "utf8");
  const client = new Etcd3({
    hosts: opts.endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: {
      host: () => noRetry as unknown as ReturnType<NonNullable<FaultHandling["host"]>>,
      global: noRetry as unknown as FaultHandling["global"],
    },
  });
  let closed = false;

  const keyBytes = (key: string) => Buffer.concat([root, Buffer.from(key, "utf8")]);
  const toKeyValue = (kv: IKeyValue): KeyValue => ({
    key: kv.key.subarray(root.length).toString("utf8"),
    value: bytes(kv.value),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  });

  async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreError("Unavailable", `${what}: etcd store is closed`);
    try {
      return await fn();
    } catch (err) {
      throw mapEtcdError(err, what);
    }
  }

  async function currentRevision(): Promise<number> {
    return call("currentRevision", async () => {
      const res = await client.kv.range({ key: root.length ? root : Buffer.from([0]), count_only: true });
      return Number(res.header.revision);
    });
  }

  function compareFor(op: TxnOp, key: Buffer): ICompare {
    if (op.op === "create") return { key, target: "Create", result: "Equal", create_revision: 0 };
    if (op.expectedModRevision !== undefined) {
      return { key, target: "Mod", result: "Equal", mod_revision: op.expectedModRevision };
    }
    return { key, target: "Create", result: "Greater", create_revision: 0 }; // delete: must exist
  }

  function requestFor(op: TxnOp, key: Buffer): IRequestOp {
    if (op.op === "delete") return { request_delete_range: { key, prev_kv: true } };
    return { request_put: { key, value: Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength), prev_kv: op.op === "update" } };
  }

  async function txn(ops: TxnOp[]): Promise<TxnResult> {
    assertDistinctKeys(ops);
    if (ops.length === 0) return { revision: await currentRevision(), results: [] };
    const keys = ops.map((op) => keyBytes(op.key));
    const what = ops.length === 1 ? `${ops[0].op} ${ops[0].key}` : `txn of ${ops.length} ops`;
    const res = await call(what, () =>
      client.kv.txn({
        compare: ops.map((op, i) => compareFor(op, keys[i])),
        success: ops.map((op, i) => requestFor(op, keys[i])),
        // On failure read every key back, to report which precondition failed and why.
        failure: keys.map((key) => ({ request_range: { key } })),
      }),
    );
    const revision = Number(res.header.revision);
    if (!res.succeeded) {
      for (let i = 0; i < ops.length; i++) {
        const kv = res.responses[i].response_range.kvs[0];
        const err = preconditionError(ops[i], kv ? toKeyValue(kv) : undefined);
        if (err) throw err;
      }
      // A compare failed but every key now satisfies its op: only possible if the key changed and
      // changed back in between, which revisions rule out. Report a conflict all the same.
      throw new StoreError("Conflict", `${what}: precondition failed`, { key: ops[0].key });
    }
    const results = ops.map((op, i): KeyValue | DeletedKeyValue => {
      const r = res.responses[i];
      if (op.op === "delete") {
        return { ...toKeyValue(r.response_delete_range.prev_kvs[0]), deleteRevision: revision };
      }
      const prev = r.response_put?.prev_kv;
      return {
        key: op.key,
        value: op.value.slice(), // like memory: later changes to the caller's buffer don't show
        createRevision: prev ? Number(prev.create_revision) : revision,
        modRevision: revision,
      };
    });
    return { revision, results };
  }

  const watches = createEtcdWatchFactory({
    client,
    root,
    keyOf: (k) => k.subarray(root.length).toString("utf8"),
    currentRevision,
    // Can etcd still serve reads at `revision`? (Tells a compaction from other watch failures.)
    async probe(revision) {
      try {
        await client.kv.range({ key: root.length ? root : Buffer.from([0]), count_only: true, revision }, { deadline: Date.now() + timeoutMs });
        return "ok";
      } catch (err) {
        if (isCompactedError(err)) return "compacted";
        if (isFutureRevisionError(err)) return "ok";
        return err;
      }
    },
    isClosed: () => closed,
  });

  return {
    async get(key) {
      return call(`get ${key}`, async () => {
        const res = await client.kv.range({ key: keyBytes(key) });
        return res.kvs.length ? toKeyValue(res.kvs[0]) : undefined;
      });
    },
    async list(prefix, listOpts) {
      const at = listOpts?.revision ?? 0;
      return call(`list ${prefix}${at ? ` at ${at}` : ""}`, async () => {
        const res = await client.kv.range({ ...prefixRange(keyBytes(prefix)), revision: at });
        // Range sorts by key by default; header.revision is the store's current revision, not `at`.
        return { items: res.kvs.map(toKeyValue), revision: at || Number(res.header.revision) };
      });
    },
    async count(prefix) {
      return call(`count ${prefix}`, async () => {
        const res = await client.kv.range({ ...prefixRange(keyBytes(prefix)), count_only: true });
        return Number(res.count);
      });
    },
    async create(key, value) {
      return (await txn([{ op: "create", key, value }])).results[0];
    },
    async update(key, value, expectedModRevision) {
      return (await txn([{ op: "update", key, value, expectedModRevision }])).results[0];
    },
    async delete(key, expectedModRevision) {
      return (await txn([{ op: "delete", key, expectedModRevision }])).results[0] as DeletedKeyValue;
    },
    txn,
    watch: (prefix, fromRevision, signal) => watches.watch(prefix, fromRevision, signal),
    currentRevision,
    async compact(revision) {
      assertRevision("revision", revision, 1);
      try {
        await call(`compact ${revision}`, () => client.kv.compact({ revision }));
      } catch (err) {
        // Compacting at or below the current compaction point is a no-op, as in memory.
        if (!(err instanceof StoreError && err.code === "Compacted")) throw err;
      }
    },
    async ready() {
      if (closed) return false;
      try {
        // A linearizable read: true only when etcd has a leader and can serve us.
        await client.kv.range({ key: root.length ? root : Buffer.from([0]), count_only: true }, { deadline: Date.now() + 2000 });
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await watches.closeAll();
      client.close();
    },
  };
}
