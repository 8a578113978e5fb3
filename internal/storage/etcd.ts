// Store on etcd v3. Unary KV calls (range/txn/compact) go through Skiff's lean gRPC transport
// (internal/client/grpc-transport.ts) with our own wire-compatible copy of etcd's KV service
// (proto/etcd): in the scale benchmark the etcd3 package's and grpc-js's per-call machinery cost
// the apiserver more CPU than its own work. Every request states its revision semantics
// explicitly. The watch needs bidi streaming, which that transport does not do: it stays on the
// `etcd3` npm package (etcd-watch.ts).

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  Compare_CompareResult,
  Compare_CompareTarget,
  CompareSchema,
  KV,
  RangeRequestSchema,
  RequestOpSchema,
  type Compare,
  type RangeResponse,
  type RequestOp,
} from "../../gen/etcd/api/etcdserverpb/rpc_pb.js";
import type { KeyValue as EtcdKeyValue } from "../../gen/etcd/api/mvccpb/kv_pb.js";
import { neverSent } from "../client/grpc-transport.ts";
import { createEtcdConnections } from "./etcd-endpoints.ts";
import { isCompactedError, isFutureRevisionError, mapEtcdError } from "./etcd-errors.ts";
import { bytes, prefixRange } from "./etcd-keys.ts";
import { createEtcdWatchFactory } from "./etcd-watch.ts";
import {
  assertDistinctKeys,
  assertListOptions,
  assertRevision,
  preconditionError,
  StoreError,
  type DeletedKeyValue,
  type KeyValue,
  type ListResult,
  type Store,
  type TxnOp,
  type TxnResult,
  type WrittenKeyValue,
} from "./store.ts";

export interface EtcdStoreOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Prepended to every key, e.g. "/skiff" (keys are then "/skiff/pods/…"). Default "". */
  prefix?: string;
  /** Deadline for each unary request. Default 10s. */
  requestTimeoutMs?: number;
  /** For https:// endpoints: etcd's CA and the client certificate etcd requires (--client-cert-auth), PEM. */
  tls?: EtcdTls;
  /** Larger responses are refused by the client; whole-range reads ask again in smaller pages. Default 64 MiB. */
  maxResponseBytes?: number;
  /**
   * With several endpoints, a member not connected within this long counts as down: calls move to
   * the next one, and a watch etcd has not confirmed within twice this is opened on the next.
   * Default 2 s. (With one endpoint calls wait for their deadline.)
   */
  dialTimeoutMs?: number;
  /**
   * Every this long etcd's member list is read and the endpoints follow it, as etcd clientv3's
   * AutoSyncInterval: members added since are used, removed ones dropped (the ones in use keep
   * their order). Off by default: the endpoints given, for good.
   */
  autoSyncIntervalMs?: number;
  /** Called with the endpoints after they changed (to log it). */
  onEndpointsChanged?(endpoints: string[]): void;
}

export interface EtcdStore extends Store {
  /** The endpoints in use, in order of preference. */
  endpoints(): string[];
  /** Reads etcd's member list now and follows it (after a member change this process made); answers the endpoints in use. */
  syncEndpoints(): Promise<string[]>;
}

export interface EtcdTls {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

// No KV call is retried: retrying a txn whose reply was lost can turn a success into
// AlreadyExists/Conflict (etcd3, which serves the watch, retries nothing either: etcd-endpoints.ts).
type KVClient = Client<typeof KV>;

// Paged reads of a whole range: the first page is small enough for values of etcd's largest
// request size (1.5 MiB), later pages hold about PAGE_BYTES.
const FIRST_PAGE_ITEMS = 32;
const MAX_PAGE_ITEMS = 10_000;
const PAGE_BYTES = 16 * 1024 * 1024;
const ZERO = Buffer.from([0]);

export function createEtcdStore(opts: EtcdStoreOptions): EtcdStore {
  if (opts.endpoints.length === 0) throw new RangeError("etcd store: no endpoints given");
  const timeoutMs = opts.requestTimeoutMs ?? 10_000;
  const dialTimeoutMs = opts.dialTimeoutMs ?? 2000;
  const root = Buffer.from(opts.prefix ?? "", "utf8");
  // The key every revision-only read asks about (a range needs a non-empty key).
  const rootKey = root.length ? root : Buffer.from([0]);
  // Calls go to one member until it fails with UNAVAILABLE, then to the next.
  let current = 0;
  // One HTTP/2 connection per endpoint, opened on first use; with autoSyncIntervalMs the set follows etcd's members.
  const conns = createEtcdConnections({
    endpoints: opts.endpoints,
    tls: opts.tls,
    maxResponseBytes: opts.maxResponseBytes,
    dialTimeoutMs,
    requestTimeoutMs: timeoutMs,
    autoSyncIntervalMs: opts.autoSyncIntervalMs,
    onChange(previous) {
      // Stay on the member in use if it is still one.
      current = Math.max(0, conns.kv.findIndex((m) => m.url === previous[current]));
      opts.onEndpointsChanged?.(conns.endpoints());
    },
  });
  let closed = false;

  /**
   * One KV call with its own deadline. A member that is unavailable hands over to the next one:
   * for this very call if it is a read (`idempotent`) or never reached the member (refused, not
   * connected within dialTimeoutMs); a txn whose reply was lost may have been applied, so then
   * the caller gets Unavailable and later calls go to the next.
   */
  async function kvCall<T>(fn: (kv: KVClient, callOpts: { timeoutMs: number }) => Promise<T>, idempotent: boolean, ms = timeoutMs): Promise<T> {
    for (let i = 0; ; i++) {
      const at = current;
      try {
        return await fn(conns.kv[at].kv, { timeoutMs: ms });
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Unavailable) || closed) throw err;
        if (current === at) current = (at + 1) % conns.kv.length;
        if (i + 1 >= conns.kv.length || !(idempotent || neverSent(err))) throw err;
      }
    }
  }

  const range = (req: MessageInitShape<typeof RangeRequestSchema>, ms?: number): Promise<RangeResponse> => kvCall((kv, o) => kv.range(req, o), true, ms);

  const rootPrefix = opts.prefix ?? "";
  const keyBytes = (key: string) => Buffer.from(rootPrefix + key, "utf8");
  const toKeyValue = (kv: EtcdKeyValue): KeyValue => ({
    key: Buffer.from(kv.key.buffer, kv.key.byteOffset + root.length, kv.key.byteLength - root.length).toString("utf8"),
    value: bytes(kv.value),
    createRevision: Number(kv.createRevision),
    modRevision: Number(kv.modRevision),
  });
  const revisionOf = (res: { header?: { revision: bigint } }) => Number(res.header?.revision ?? 0);

  async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (closed) throw new StoreError("Unavailable", `${what}: etcd store is closed`);
    try {
      return await fn();
    } catch (err) {
      throw mapEtcdError(err, what);
    }
  }

  async function currentRevision(): Promise<number> {
    return call("currentRevision", async () => revisionOf(await range({ key: rootKey, countOnly: true })));
  }

  function compareFor(op: TxnOp, key: Buffer): Compare {
    const { Equal, Greater } = Compare_CompareResult;
    const { Create, Mod } = Compare_CompareTarget;
    if (op.op === "create") return create(CompareSchema, { key, target: Create, result: Equal, targetUnion: { case: "createRevision", value: 0n } });
    if (op.expectedModRevision !== undefined) {
      return create(CompareSchema, { key, target: Mod, result: Equal, targetUnion: { case: "modRevision", value: BigInt(op.expectedModRevision) } });
    }
    // delete: must exist
    return create(CompareSchema, { key, target: Create, result: Greater, targetUnion: { case: "createRevision", value: 0n } });
  }

  // A delete returns the deleted value (prev_kv); a put asks for no previous version: etcd would
  // read it back and send it for nothing (Kubernetes' etcd3 store does not ask either).
  function requestFor(op: TxnOp, key: Buffer): RequestOp {
    if (op.op === "delete") return create(RequestOpSchema, { request: { case: "requestDeleteRange", value: { key, prevKv: true } } });
    return create(RequestOpSchema, { request: { case: "requestPut", value: { key, value: op.value } } });
  }

  async function txn(ops: TxnOp[]): Promise<TxnResult> {
    assertDistinctKeys(ops);
    if (ops.length === 0) return { revision: await currentRevision(), results: [] };
    const keys = ops.map((op) => keyBytes(op.key));
    const what = ops.length === 1 ? `${ops[0].op} ${ops[0].key}` : `txn of ${ops.length} ops`;
    const res = await call(what, () =>
      kvCall(
        (kv, o) =>
          kv.txn(
            {
              compare: ops.map((op, i) => compareFor(op, keys[i])),
              success: ops.map((op, i) => requestFor(op, keys[i])),
              // On failure read every key back, to report which precondition failed and why.
              failure: keys.map((key) => create(RequestOpSchema, { request: { case: "requestRange", value: { key } } })),
            },
            o,
          ),
        false,
      ),
    );
    const revision = revisionOf(res);
    if (!res.succeeded) {
      for (let i = 0; i < ops.length; i++) {
        const r = res.responses[i]?.response;
        const kv = r?.case === "responseRange" ? r.value.kvs[0] : undefined;
        const err = preconditionError(ops[i], kv ? toKeyValue(kv) : undefined);
        if (err) throw err;
      }
      // A compare failed but every key now satisfies its op: only possible if the key changed and
      // changed back in between, which revisions rule out. Report a conflict all the same.
      throw new StoreError("Conflict", `${what}: precondition failed`, { key: ops[0].key });
    }
    const results = ops.map((op, i): WrittenKeyValue | DeletedKeyValue => {
      if (op.op === "delete") {
        const r = res.responses[i]?.response;
        const prev = r?.case === "responseDeleteRange" ? r.value.prevKvs[0] : undefined;
        if (!prev) throw new StoreError("Unavailable", `${what}: etcd answered a delete without the deleted value`);
        return { ...toKeyValue(prev), deleteRevision: revision };
      }
      // like memory: later changes to the caller's buffer don't show
      return { key: op.key, value: op.value.slice(), modRevision: revision };
    });
    return { revision, results };
  }

  /**
   * The keys in [key, rangeEnd) at one revision (at most maxItems, 0 = all), read in pages: one
   * response holding a whole kind could exceed the transport's message limit (64 MiB). Pages are
   * sized from the largest value seen so far to about PAGE_BYTES; a page that is too large all
   * the same is asked again smaller.
   */
  async function readPages(key: Buffer, rangeEnd: Buffer, at: number, maxItems: number): Promise<ListResult> {
    const items: KeyValue[] = [];
    let revision = at;
    let limit = FIRST_PAGE_ITEMS;
    let largest = 0;
    for (;;) {
      const want = maxItems > 0 ? Math.min(limit, maxItems - items.length) : limit;
      let res: RangeResponse;
      try {
        res = await range({ key, rangeEnd, revision: BigInt(revision), limit: BigInt(want) });
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.ResourceExhausted && want > 1) {
          limit = Math.max(1, Math.floor(want / 4));
          continue;
        }
        throw err;
      }
      // header.revision is the store's current revision: the first page's is the list's.
      revision ||= revisionOf(res);
      for (const kv of res.kvs) {
        items.push(toKeyValue(kv));
        largest = Math.max(largest, kv.key.byteLength + kv.value.byteLength);
      }
      // count is every key from this page's start to rangeEnd.
      const remaining = Number(res.count) - res.kvs.length;
      if (!res.more || res.kvs.length === 0 || items.length === maxItems) return { items, revision, remaining };
      key = Buffer.concat([res.kvs[res.kvs.length - 1].key, ZERO]);
      limit = Math.min(MAX_PAGE_ITEMS, Math.max(1, Math.floor(PAGE_BYTES / Math.max(1, largest))));
    }
  }

  const watches = createEtcdWatchFactory({
    clients: conns.watchClients,
    root,
    keyOf: (k) => k.subarray(root.length).toString("utf8"),
    currentRevision,
    // Can etcd still serve reads at `revision`? (Tells a compaction from other watch failures.)
    async probe(revision) {
      try {
        await range({ key: rootKey, countOnly: true, revision: BigInt(revision) });
        return "ok";
      } catch (err) {
        if (isCompactedError(err)) return "compacted";
        if (isFutureRevisionError(err)) return "ok";
        return err;
      }
    },
    isClosed: () => closed,
    // Read at every watch opened: the endpoints may have grown or shrunk since the start.
    get confirmWithinMs() {
      return conns.kv.length > 1 ? Math.max(dialTimeoutMs, 1000) * 2 : undefined;
    },
  });

  return {
    endpoints: () => conns.endpoints(),
    syncEndpoints: () => conns.sync(),
    async get(key) {
      return call(`get ${key}`, async () => {
        const res = await range({ key: keyBytes(key) });
        return res.kvs.length ? toKeyValue(res.kvs[0]) : undefined;
      });
    },
    async list(prefix, listOpts) {
      assertListOptions(prefix, listOpts);
      const at = listOpts?.revision ?? 0;
      return call(`list ${prefix}${at ? ` at ${at}` : ""}`, async () => {
        const { key: prefixKey, range_end } = prefixRange(keyBytes(prefix));
        const key = listOpts?.startKey === undefined ? prefixKey : keyBytes(listOpts.startKey);
        return readPages(key, range_end, at, listOpts?.limit ?? 0);
      });
    },
    async count(prefix) {
      return call(`count ${prefix}`, async () => {
        const { key, range_end } = prefixRange(keyBytes(prefix));
        return Number((await range({ key, rangeEnd: range_end, countOnly: true })).count);
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
    watch: (prefix, fromRevision, signal, watchOpts) => watches.watch(prefix, fromRevision, signal, watchOpts?.prevValues ?? true),
    currentRevision,
    async compact(revision) {
      assertRevision("revision", revision, 1);
      try {
        await call(`compact ${revision}`, () => kvCall((kv, o) => kv.compact({ revision: BigInt(revision) }, o), false));
      } catch (err) {
        // Compacting at or below the current compaction point is a no-op, as in memory.
        if (!(err instanceof StoreError && err.code === "Compacted")) throw err;
      }
    },
    async ready() {
      if (closed) return false;
      try {
        // A linearizable read: true only when etcd has a leader and can serve us.
        await range({ key: rootKey, countOnly: true }, 2000);
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await watches.closeAll();
      conns.close();
    },
  };
}
