// Paged List on the memory store: pages in key order at one revision, remaining counts, selectors
// applied per page with bounded work, and expiry of a token's revision by compaction.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { ConfigMapSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { createResourceOps, type ListResult, type ResourceOps } from "./resources.ts";

const cmKind = kindByName("ConfigMap")!;
let store: Store;
let ops: ResourceOps;

beforeEach(() => {
  store = createMemoryStore({ historyLimit: 100_000 });
  ops = createResourceOps(cmKind, { store, caches: new Map() });
});

const nameAt = (i: number) => `cm-${String(i).padStart(4, "0")}`;

async function make(n: number, ns = "default", labelled?: (i: number) => boolean): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => nameAt(i));
  for (const [i, name] of names.entries()) {
    const labels: Record<string, string> = labelled?.(i) ? { pick: "yes" } : {};
    await ops.create(create(ConfigMapSchema, { metadata: { name, namespace: ns, labels } }));
  }
  return names;
}

const namesOf = (items: ApiObject[]) => items.map((o) => o.metadata!.name);

async function errorOf(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected an error");
    },
    (e: unknown) => ConnectError.from(e),
  );
}

async function allPages(namespace: string, labelSelector: string, limit: number): Promise<ListResult[]> {
  const pages: ListResult[] = [];
  let token = "";
  do {
    const page = await ops.list(namespace, labelSelector, "", { limit, continue: token });
    pages.push(page);
    token = page.continue ?? "";
  } while (token);
  return pages;
}

describe("paged List", () => {
  it("returns pages in name order at one resource version, with the count of what follows", async () => {
    const names = await make(10);
    await make(2, "other");
    const first = await ops.list("default", "", "", { limit: 3 });
    // Written after the first page: not part of this list.
    await ops.create(create(ConfigMapSchema, { metadata: { name: "cm-0005a", namespace: "default" } }));
    await ops.delete("default", nameAt(7));
    const pages = [first];
    let token = first.continue ?? "";
    while (token) {
      const page = await ops.list("default", "", "", { limit: 3, continue: token });
      pages.push(page);
      token = page.continue ?? "";
    }
    expect(pages.map((p) => namesOf(p.items))).toEqual([names.slice(0, 3), names.slice(3, 6), names.slice(6, 9), names.slice(9)]);
    expect(pages.map((p) => p.remainingItemCount)).toEqual([7, 4, 1, undefined]);
    expect(new Set(pages.map((p) => p.resourceVersion))).toEqual(new Set([first.resourceVersion]));
  });

  it("gives no continue when a page ends exactly at the last object", async () => {
    await make(6);
    const pages = await allPages("default", "", 3);
    expect(pages.map((p) => p.items.length)).toEqual([3, 3]);
    expect(pages[1].continue).toBeUndefined();
  });

  it("reads the rest at the token's version when a continue comes without a limit", async () => {
    const names = await make(5);
    const first = await ops.list("default", "", "", { limit: 2 });
    await ops.delete("default", nameAt(4));
    const rest = await ops.list("default", "", "", { continue: first.continue });
    expect(namesOf(rest.items)).toEqual(names.slice(2));
    expect(rest.continue).toBeUndefined();
  });

  it("filters per page: a selective selector ends a page short (even empty) rather than scanning everything", async () => {
    await make(600, "default", (i) => i === 599 || i === 3);
    const pages = await allPages("default", "pick=yes", 1);
    expect(pages.flatMap((p) => namesOf(p.items))).toEqual([nameAt(3), nameAt(599)]);
    // 1, 2, 4, … objects per storage read, at most 8 reads a page: the second page stops short.
    expect(pages[1].items).toEqual([]);
    expect(pages[1].continue).toBeTruthy();
    expect(pages.every((p) => p.remainingItemCount === undefined)).toBe(true);
  });

  it("fails with OUT_OF_RANGE once the token's version is compacted", async () => {
    await make(4);
    const first = await ops.list("default", "", "", { limit: 2 });
    await ops.create(create(ConfigMapSchema, { metadata: { name: "later", namespace: "default" } }));
    await store.compact(await store.currentRevision());
    const err = await errorOf(ops.list("default", "", "", { limit: 2, continue: first.continue }));
    expect(err.code).toBe(Code.OutOfRange);
    expect(err.rawMessage).toMatch(/too old .*list again without continue/);
  });

  it("refuses a negative limit and a token for a revision the store has not reached", async () => {
    await make(3);
    expect((await errorOf(ops.list("default", "", "", { limit: -2 }))).code).toBe(Code.InvalidArgument);
    const first = await ops.list("default", "", "", { limit: 1 });
    const doc = JSON.parse(Buffer.from(first.continue!, "base64url").toString());
    const future = Buffer.from(JSON.stringify({ ...doc, rv: doc.rv + 50 })).toString("base64url");
    const err = await errorOf(ops.list("default", "", "", { limit: 1, continue: future }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/^continue: /);
  });
});
