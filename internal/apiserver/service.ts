// Turns the generic resource operations into one Connect service per kind. Requests and responses
// differ per kind only in the name of the field that carries the object (kind.field).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { WatchEventType } from "../../gen/skiff/v1alpha1/meta_pb.js";
import type { ApiObject } from "../api/registry.ts";
import type { Store } from "../storage/store.ts";
import { invalid, toApiError, withApiErrors } from "./errors.ts";
import { checkPageRequest } from "./list.ts";
import { parseResourceVersion } from "./objects.ts";
import { userKey } from "../auth/types.ts";
import { handOver, type ResourceOps } from "./resources.ts";
import type { CacheWatcher, ObjectFilter, WatchCache } from "./watchcache.ts";
import { watchOwnerKey, type WatchLimiter } from "./watch-limits.ts";

export interface ServiceOptions {
  /** How often an idle watch gets a BOOKMARK, so clients and proxies see the stream alive. */
  heartbeatMs: number;
  onWatch?: (kind: string, delta: 1 | -1) => void;
  /** A failure that is not an API error (a bug, a dependency's surprise): logged, answered INTERNAL. */
  onInternalError?: (err: unknown) => void;
  /** Caps open watches per owner (connection now; identity once requests carry one). */
  watchLimiter?: WatchLimiter;
  /** How long a watch from a resource version newer than storage's waits for it. Default 3 s. */
  futureVersionWaitMs?: number;
  /** Handlers of the kind's RPCs beyond the generic ones (strategies.ts: PodService.Bind, ServiceAccountService.CreateToken). */
  extraRpcs?: Record<string, unknown>;
}

const eventTypes = {
  ADDED: WatchEventType.ADDED,
  MODIFIED: WatchEventType.MODIFIED,
  DELETED: WatchEventType.DELETED,
  BOOKMARK: WatchEventType.BOOKMARK,
} as const;

/** The handlers of one kind's service, as connect's router (and the direct gRPC path) take them. */
export function serviceImpl(ops: ResourceOps, cache: WatchCache, store: Store, opts: ServiceOptions): Record<string, unknown> {
  const { kind } = ops;
  const f = kind.field;
  // One response object per (event, type), shared by every watcher that gets it, so that the
  // direct gRPC path encodes it once for all of them.
  const responses = new WeakMap<ApiObject, Partial<Record<string, object>>>();
  const responseOf = (type: keyof typeof eventTypes, obj: ApiObject) => {
    let byType = responses.get(obj);
    if (!byType) responses.set(obj, (byType = {}));
    return (byType[type] ??= { type: eventTypes[type], [f]: obj });
  };
  const bookmark = (rev: number) => ({
    type: WatchEventType.BOOKMARK,
    [f]: create(kind.schema, { metadata: { resourceVersion: String(rev) } }),
  });

  const impl: Record<string, unknown> = {
    async create(req: any, ctx: HandlerContext) {
      return { [f]: await ops.create(handOver(req[f]), req.dryRun, ctx.values.get(userKey)) };
    },
    async get(req: any) {
      return { [f]: await ops.get(req.namespace ?? "", req.name) };
    },
    async list(req: any) {
      const page = { limit: checkPageRequest(req.limit), continue: req.continue };
      const res = await ops.list(req.namespace ?? "", req.labelSelector, req.fieldSelector, page);
      const remaining = res.remainingItemCount;
      return { ...res, remainingItemCount: remaining === undefined ? undefined : BigInt(remaining) };
    },
    async update(req: any, ctx: HandlerContext) {
      return { [f]: await ops.update(handOver(req[f]), req.dryRun, ctx.values.get(userKey)) };
    },
    async delete(req: any) {
      const { obj, deleted } = await ops.delete(req.namespace ?? "", req.name, req.options);
      return { [f]: obj, deleted };
    },
    async *watch(req: any, ctx: Pick<HandlerContext, "signal"> & { values?: HandlerContext["values"] }) {
      const { w, initial, from, release } = await openWatch(req, ctx).catch((err) => Promise.reject(toApiError(err, opts.onInternalError)));
      const start = from;
      const stop = () => w.close();
      ctx.signal.addEventListener("abort", stop);
      opts.onWatch?.(kind.kind, 1);
      try {
        if (req.resourceVersion === "") {
          for (const obj of initial) {
            if (ctx.signal.aborted) break; // deadline or shutdown: not after the whole initial state
            yield { type: WatchEventType.ADDED, [f]: obj };
          }
          yield bookmark(start);
        }
        while (!ctx.signal.aborted) {
          const batch = await w.next(opts.heartbeatMs);
          if (batch.length === 0) yield bookmark(w.revision());
          for (const e of batch) {
            yield e.type === "BOOKMARK" ? bookmark(e.revision) : responseOf(e.type, e.obj as ApiObject);
          }
        }
        // Aborted by the server shutting down (a client's own cancel never reaches its stream).
        throw new ConnectError("server shutting down: resume the watch from the last resource version", Code.Unavailable);
      } catch (err) {
        if (ctx.signal.aborted && err instanceof ConnectError && err.code === Code.Canceled) {
          // The watch was closed by the abort: a shutdown (or deadline) still ends it with its status.
          const reason: unknown = ctx.signal.reason;
          if (reason instanceof ConnectError && reason.code !== Code.Canceled) throw reason;
          return;
        }
        throw toApiError(err, opts.onInternalError);
      } finally {
        ctx.signal.removeEventListener("abort", stop);
        w.close();
        release();
        opts.onWatch?.(kind.kind, -1);
      }
    },
  };
  async function openWatch(req: any, ctx: { values?: HandlerContext["values"] }): Promise<{ w: CacheWatcher; initial: ApiObject[]; from: number; release: () => void }> {
    const filter = ops.filter(req.namespace ?? "", req.labelSelector, req.fieldSelector);
    // Refused before any work when its owner has too many open.
    const release = opts.watchLimiter?.acquire(ctx.values?.get(watchOwnerKey)) ?? (() => {});
    try {
      return { ...(await startWatch(req, filter)), release };
    } catch (err) {
      release();
      throw err;
    }
  }

  async function startWatch(req: any, filter: ObjectFilter): Promise<{ w: CacheWatcher; initial: ApiObject[]; from: number }> {
    let from: number | undefined;
    try {
      from = parseResourceVersion(req.resourceVersion);
    } catch (e) {
      throw invalid("watch request", [{ field: "resourceVersion", message: (e as Error).message }]);
    }
    // No version: the current state comes from a consistent list (the cache may lag a write the
    // client just made), and the watch continues from that list's revision.
    let initial: ApiObject[] = [];
    if (from === undefined) {
      const listed = await ops.list(req.namespace ?? "", req.labelSelector, req.fieldSelector);
      initial = listed.items;
      from = Number(listed.resourceVersion);
    } else {
      await awaitVersion(from);
    }
    return { w: cache.watch(from, filter), initial, from };
  }

  /**
   * A watch from a version storage has not reached yet: wait a little (another apiserver may be
   * ahead of this one's view), then refuse, as Kubernetes does ("Too large resource version");
   * watching from it would deliver nothing until storage got there, and bookmarks would claim it.
   */
  async function awaitVersion(from: number): Promise<void> {
    if (from <= cache.revision()) return;
    const until = Date.now() + (opts.futureVersionWaitMs ?? 3000);
    for (;;) {
      const current = await store.currentRevision();
      if (from <= current) return;
      if (Date.now() >= until) {
        throw new ConnectError(
          `too large resource version: ${from}, current: ${current}; list again and watch from the list's resource version`,
          Code.OutOfRange,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  if (kind.hasStatus) {
    impl.updateStatus = async (req: any, ctx: HandlerContext) => ({ [f]: await ops.updateStatus(handOver(req[f]), ctx.values.get(userKey)) });
  }
  Object.assign(impl, opts.extraRpcs);
  // Every handler's failure goes through the one error table (the watch does it above).
  const { watch, ...unary } = impl;
  return { ...withApiErrors(unary, opts.onInternalError), watch };
}
