// Lists a whole collection in pages (like client-go's ListPager): no single response has to hold
// every object, so a kind of any size can be listed, and the apiserver reads storage a page at a
// time. Every page is read at the first page's resource version, so the result is one consistent
// snapshot. When that version is compacted between two pages (OUT_OF_RANGE), the list starts over.
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import type { ApiObject } from "../api/registry.ts";
import type { ListOptions, ResourceClient } from "./resource-client.ts";

/** Items per page when nothing else is said: kubectl's and client-go's default. */
export const DEFAULT_PAGE_SIZE = 500;

export interface PagedListOptions extends ListOptions, CallOptions {
  /** Items per page (0 = everything in one response). Default 500. */
  pageSize?: number;
  /** How often to start over after a compacted continue token before giving up. Default 3. */
  restarts?: number;
}

export async function listAllPages<T extends ApiObject>(
  client: ResourceClient<T>,
  namespace: string,
  opts: PagedListOptions = {},
): Promise<{ items: T[]; resourceVersion: string }> {
  const { pageSize = DEFAULT_PAGE_SIZE, restarts = 3, ...rest } = opts;
  if (!Number.isSafeInteger(pageSize) || pageSize < 0) throw new RangeError(`pageSize must be an integer >= 0, got ${pageSize}`);
  for (let attempt = 0; ; attempt++) {
    const items: T[] = [];
    let token = "";
    try {
      for (;;) {
        const page = await client.list(namespace, { ...rest, limit: pageSize, continue: token });
        items.push(...page.items);
        if (!page.continue) return { items, resourceVersion: page.resourceVersion };
        token = page.continue;
      }
    } catch (err) {
      const expired = token !== "" && ConnectError.from(err).code === Code.OutOfRange;
      if (!expired || attempt >= restarts) throw err;
    }
  }
}
