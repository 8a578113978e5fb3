// The client's pager against an apiserver whose list continue tokens can expire: it starts over
// (no object twice, none missing), and it does not hide other failures.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { listAllPages } from "./pager.ts";
import type { ListPage, PageOptions, ResourceClient } from "./resource-client.ts";

const cm = (name: string) => create(ConfigMapSchema, { metadata: { name, namespace: "default" } });

/** A List over `names` in pages, whose tokens expire when `expire()` says so. */
function pagedClient(names: string[], expire: (token: string) => boolean) {
  const calls: PageOptions[] = [];
  const list = async (_ns: string, o: PageOptions = {}): Promise<ListPage<ConfigMap>> => {
    calls.push({ limit: o.limit, continue: o.continue });
    if (o.continue && expire(o.continue)) throw new ConnectError("continue: too old", Code.OutOfRange);
    const from = o.continue ? Number(o.continue) : 0;
    const to = o.limit ? Math.min(names.length, from + o.limit) : names.length;
    return { items: names.slice(from, to).map(cm), resourceVersion: "9", continue: to < names.length ? String(to) : undefined };
  };
  return { client: { list } as unknown as ResourceClient<ConfigMap>, calls };
}

const names = Array.from({ length: 7 }, (_, i) => `cm-${i}`);

describe("listAllPages", () => {
  it("asks for pages of the given size until no continue comes back", async () => {
    const { client, calls } = pagedClient(names, () => false);
    const all = await listAllPages(client, "default", { pageSize: 3 });
    expect(all.items.map((o) => o.metadata!.name)).toEqual(names);
    expect(calls).toEqual([
      { limit: 3, continue: "" },
      { limit: 3, continue: "3" },
      { limit: 3, continue: "6" },
    ]);
  });

  it("starts over when a continue token has expired, and gives up after `restarts` tries", async () => {
    let expired = 0;
    const { client, calls } = pagedClient(names, (t) => t === "6" && expired++ === 0);
    const all = await listAllPages(client, "default", { pageSize: 3 });
    expect(all.items.map((o) => o.metadata!.name)).toEqual(names);
    expect(calls.map((c) => c.continue)).toEqual(["", "3", "6", "", "3", "6"]);

    const always = pagedClient(names, () => true);
    const err = await listAllPages(always.client, "default", { pageSize: 3, restarts: 2 }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.OutOfRange });
    expect(always.calls).toHaveLength(6);
  });

  it("passes other errors through, and lists everything in one call with pageSize 0", async () => {
    const failing = { list: async () => Promise.reject(new ConnectError("down", Code.Unavailable)) } as unknown as ResourceClient<ConfigMap>;
    await expect(listAllPages(failing, "default")).rejects.toMatchObject({ code: Code.Unavailable });
    const { client, calls } = pagedClient(names, () => false);
    expect((await listAllPages(client, "default", { pageSize: 0 })).items).toHaveLength(7);
    expect(calls).toEqual([{ limit: 0, continue: "" }]);
  });
});
