// List, whole or in pages. A paged List reads storage from a start key with a limit, every page at
// the revision of the first one (etcd keeps it until compaction), and hands the client a continue
// token naming that revision and the next key. Selectors apply to each page as it is read, so a
// page may hold fewer items than the limit and still be followed by more, as in Kubernetes.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiObject, Kind } from "../api/registry.ts";
import { keyAfter, StoreError, type KeyValue, type Store } from "../storage/store.ts";
import { decodeContinue, encodeContinue } from "./continue.ts";
import { invalid } from "./errors.ts";
import { decode, prefixFor } from "./objects.ts";
import type { ObjectFilter } from "./watchcache.ts";

export interface PageRequest {
  /** At most this many items (0 = all). */
  limit?: number;
  /** The previous page's continue token ("" = the first page). */
  continue?: string;
}

export interface ListResult {
  items: ApiObject[];
  resourceVersion: string;
  /** Set when more items follow. */
  continue?: string;
  /** Items after this page, when known: only without selectors (they are counted, not read). */
  remainingItemCount?: number;
}

/**
 * Bounds on one page. Its objects stop at about PAGE_BYTES, so that a page of large objects still
 * fits the 64 MiB message limit of Skiff's client transport. And when selectors filter out most of what is read, reads grow (doubling from `limit`,
 * as Kubernetes' do) but stop after MAX_READS_PER_PAGE reads or PAGE_BYTES read: the page then
 * ends short, with a continue token, instead of scanning a whole kind in one request.
 */
const PAGE_BYTES = 32 * 1024 * 1024;
const MAX_READS_PER_PAGE = 8;
const MAX_READ_ITEMS = 10_000;

export function checkPageRequest(limit: bigint | number | undefined): number {
  const n = Number(limit ?? 0);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw invalid("list request", [{ field: "limit", message: "must be a non-negative integer (0 lists everything)" }]);
  }
  return n;
}

export async function listObjects(
  kind: Kind,
  store: Store,
  namespace: string,
  filter: ObjectFilter,
  hasSelectors: boolean,
  page: PageRequest = {},
): Promise<ListResult> {
  const limit = checkPageRequest(page.limit);
  const prefix = prefixFor(kind, kind.namespaced ? namespace : "");
  const from = page.continue ? decodeContinue(page.continue) : undefined;
  let revision = from?.revision ?? 0;
  let startKey = from ? prefix + from.start : undefined;
  const items: ApiObject[] = [];
  const read = async (max: number) => {
    try {
      return await store.list(prefix, { revision, startKey, limit: max });
    } catch (err) {
      throw listError(err, revision);
    }
  };

  if (limit === 0) {
    // Everything (from the continue position on, if one was given) at one revision.
    const all = await read(0);
    for (const kv of all.items) collect(kind, kv, filter, items);
    return { items, resourceVersion: String(all.revision) };
  }

  let readSize = limit;
  let scannedBytes = 0;
  let pageBytes = 0;
  for (let reads = 1; ; reads++) {
    const res = await read(readSize);
    revision = res.revision;
    for (let i = 0; i < res.items.length; i++) {
      const kv = res.items[i];
      if (collect(kind, kv, filter, items)) pageBytes += kv.value.byteLength;
      if (items.length < limit && pageBytes < PAGE_BYTES) continue;
      const left = res.items.length - 1 - i + res.remaining;
      return pageResult(items, revision, prefix, kv.key, left, hasSelectors);
    }
    if (res.remaining === 0 || res.items.length === 0) return { items, resourceVersion: String(revision) };
    const last = res.items[res.items.length - 1].key;
    for (const kv of res.items) scannedBytes += kv.value.byteLength;
    if (reads >= MAX_READS_PER_PAGE || scannedBytes >= PAGE_BYTES) {
      return pageResult(items, revision, prefix, last, res.remaining, hasSelectors);
    }
    startKey = keyAfter(last);
    readSize = Math.max(limit, Math.min(readSize * 2, MAX_READ_ITEMS));
  }
}

/** Adds the object to `out` if it passes the filter; says whether it did. */
function collect(kind: Kind, kv: KeyValue, filter: ObjectFilter, out: ApiObject[]): boolean {
  const obj = decode(kind, kv.value, kv.modRevision);
  if (!filter(obj)) return false;
  out.push(obj);
  return true;
}

function pageResult(items: ApiObject[], revision: number, prefix: string, lastKey: string, left: number, hasSelectors: boolean): ListResult {
  const result: ListResult = { items, resourceVersion: String(revision) };
  if (left <= 0) return result;
  result.continue = encodeContinue({ revision, start: keyAfter(lastKey).slice(prefix.length) });
  if (!hasSelectors) result.remainingItemCount = left;
  return result;
}

function listError(err: unknown, revision: number): unknown {
  if (err instanceof StoreError && err.code === "Compacted") {
    return new ConnectError(
      `continue: the list's resource version ${revision} is too old (compacted) to display a consistent list: list again without continue`,
      Code.OutOfRange,
    );
  }
  // Only a continue token can name a revision the store has not reached (or, changed, a key
  // outside the list): either way the token is not one this server handed out.
  if (err instanceof RangeError && revision > 0) {
    return new ConnectError(
      `continue: resource version ${revision} is not one this server listed at; pass the continue value of the previous page unchanged`,
      Code.InvalidArgument,
    );
  }
  return err;
}
