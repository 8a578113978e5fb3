// List pagination end to end on a real etcd: a kind whose objects add up to more than one gRPC
// message may hold (700 ConfigMaps of 100 KB = 70 MB, past the 64 MiB limit) is listed in pages,
// survives an apiserver restart (its watch cache reads etcd in pages), and syncs an informer and
// `skiffctl get`; continue tokens are checked, consistent, and expire with compaction.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { createInformer } from "../../internal/client/informer.ts";
import { listAllPages } from "../../internal/client/pager.ts";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { adminConfigFile } from "../../internal/cli/testing.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { requestTls } from "../harness/pki.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const NS = "paged";
const COUNT = 700;
const BLOB = "x".repeat(100_000);
const nameOf = (i: number) => `big-${String(i).padStart(4, "0")}`;
const allNames = Array.from({ length: COUNT }, (_, i) => nameOf(i));

let cp: ControlPlane;
let cms: ResourceClient<ConfigMap>;

const names = (items: ConfigMap[]) => items.map((o) => o.metadata!.name);

beforeAll(async () => {
  cp = await startControlPlane();
  cms = cp.client<ConfigMap>("ConfigMap");
  for (const ns of [NS, "small"]) await cp.client("Namespace").create(create(NamespaceSchema, { metadata: { name: ns } }));
  // 16 writers at a time: 70 MB into etcd without taking long.
  for (let i = 0; i < COUNT; i += 16) {
    await Promise.all(
      allNames.slice(i, i + 16).map((name) => cms.create(create(ConfigMapSchema, { metadata: { name, namespace: NS }, data: { blob: BLOB } }))),
    );
  }
}, 180_000);
afterAll(async () => {
  await cp?.stop();
});

describe("a kind larger than one message", () => {
  it("lists in pages: every object exactly once, all pages at the first page's resource version", async () => {
    const first = await cms.list(NS, { limit: 100 });
    expect(names(first.items)).toEqual(allNames.slice(0, 100));
    expect(first.remainingItemCount).toBe(COUNT - 100);
    expect(first.continue).toBeTruthy();
    // Written after the first page: the later pages, read at its revision, do not show them.
    const late = await cms.create(create(ConfigMapSchema, { metadata: { name: "big-9999", namespace: NS } }));
    const changed = await cms.get(NS, nameOf(650));
    changed.data = { blob: "changed" };
    await cms.update(changed);

    const seen = [...first.items];
    let token = first.continue!;
    while (token) {
      const page = await cms.list(NS, { limit: 100, continue: token });
      expect(page.resourceVersion).toBe(first.resourceVersion);
      expect(page.items.length).toBeLessThanOrEqual(100);
      seen.push(...page.items);
      token = page.continue ?? "";
    }
    expect(names(seen)).toEqual(allNames);
    expect(seen.find((o) => o.metadata!.name === nameOf(650))!.data.blob).toBe(BLOB);
    await cms.delete(NS, late.metadata!.name);
    const restored = await cms.get(NS, nameOf(650));
    restored.data = { blob: BLOB };
    await cms.update(restored);
  });

  it("ends a page at 32 MiB of objects, whatever the limit, so that every page fits a client's message limit", async () => {
    const page = await cms.list(NS, { limit: COUNT });
    // 100 KB objects: 32 MiB is 336 of them.
    expect(page.items.length).toBeGreaterThan(300);
    expect(page.items.length).toBeLessThan(350);
    expect(page.remainingItemCount).toBe(COUNT - page.items.length);
    const rest = await cms.list(NS, { limit: COUNT, continue: page.continue });
    expect(names([...page.items, ...rest.items])).toEqual(allNames.slice(0, page.items.length + rest.items.length));
  });

  it("arrives whole through the client's pager (pages of 500 by default)", async () => {
    const all = await listAllPages(cms, NS);
    expect(names(all.items)).toEqual(allNames);
    expect(Number(all.resourceVersion)).toBeGreaterThan(0);
  });

  it("restarts the apiserver, whose watch cache lists the kind from etcd in pages, and serves it", async () => {
    await cp.restartApiServer();
    const all = await listAllPages(cms, NS, { pageSize: 250 });
    expect(names(all.items)).toEqual(allNames);
    // A watch from the list's version works: the watch cache is up with every object.
    const ac = new AbortController();
    const events = cms.watch(NS, { resourceVersion: all.resourceVersion, signal: ac.signal })[Symbol.asyncIterator]();
    const created = await cms.create(create(ConfigMapSchema, { metadata: { name: "after-restart", namespace: NS } }));
    let ev = await events.next();
    while (ev.value.type === "BOOKMARK") ev = await events.next();
    expect(ev.value).toMatchObject({ type: "ADDED", object: { metadata: { name: "after-restart" } } });
    ac.abort();
    await cms.delete(NS, created.metadata!.name);
  });

  it("syncs an informer through pages", async () => {
    const inf = createInformer(cms, { namespace: NS, pageSize: 200 });
    inf.start();
    try {
      await inf.waitForSync();
      expect(inf.listKeys().sort()).toEqual(allNames.map((n) => `${NS}/${n}`));
    } finally {
      await inf.stop();
    }
  });

  it("skiffctl get lists in chunks (default 500, --chunk-size N); --chunk-size 0 asks for everything at once", async () => {
    const byDefault = await skiffctl(["get", "configmaps", "-n", NS, "-o", "name"]);
    expect(byDefault.code).toBe(0);
    expect(byDefault.out.trim().split("\n")).toEqual(allNames.map((n) => `configmap/${n}`));
    const chunked = await skiffctl(["get", "cm", "-n", NS, "--chunk-size", "64"]);
    expect(chunked.code).toBe(0);
    expect(chunked.out.trim().split("\n")).toHaveLength(COUNT + 1); // header + rows
    const whole = await skiffctl(["get", "cm", "-n", NS, "--chunk-size", "0"]);
    expect(whole.code).not.toBe(0);
    expect(whole.err).toMatch(/larger than/);
    const bad = await skiffctl(["get", "cm", "-n", NS, "--chunk-size", "-5"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/--chunk-size/);
  });
});

describe("continue tokens and selectors", () => {
  beforeAll(async () => {
    for (let i = 0; i < 30; i++) {
      const labels: Record<string, string> = i % 3 === 0 ? { pick: "yes" } : {};
      await cms.create(create(ConfigMapSchema, { metadata: { name: `s-${String(i).padStart(2, "0")}`, namespace: "small", labels } }));
    }
  });

  it("applies selectors per page: the matching objects each once, no remaining count", async () => {
    const got: string[] = [];
    let token = "";
    do {
      const page = await cms.list("small", { labelSelector: "pick=yes", limit: 4, continue: token });
      expect(page.items.length).toBeLessThanOrEqual(4);
      expect(page.remainingItemCount).toBeUndefined();
      got.push(...names(page.items));
      token = page.continue ?? "";
    } while (token);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `s-${String(i * 3).padStart(2, "0")}`));
  });

  it("speaks Kubernetes' names in JSON over Connect: limit, continue, remainingItemCount", async () => {
    const list = async (body: object) => {
      const res = await requestTls(`${cp.server.url}/skiff.v1alpha1.ConfigMapService/List`, {
        ...cp.pki.adminNodeOptions,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: JSON.parse(res.body) as Record<string, any> };
    };
    const first = await list({ namespace: "small", limit: 20 });
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(20);
    expect(first.body.remainingItemCount).toBe("10");
    const second = await list({ namespace: "small", limit: "20", continue: first.body.continue });
    expect(second.body.items.map((o: any) => o.metadata.name)).toEqual(Array.from({ length: 10 }, (_, i) => `s-${20 + i}`));
    expect(second.body.continue).toBeUndefined();
    const bad = await list({ namespace: "small", limit: 20, continue: "garbage" });
    expect(bad).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
  });

  it("refuses a tampered or foreign token, and a negative limit, with INVALID_ARGUMENT", async () => {
    const { continue: token, resourceVersion } = await cms.list("small", { limit: 5 });
    const doc = JSON.parse(Buffer.from(token!, "base64url").toString());
    const forged = (o: object) => Buffer.from(JSON.stringify({ ...doc, ...o })).toString("base64url");
    const tampered = [
      "not a token!",
      token!.slice(0, token!.length - 7),
      token!.replace(/[A-Za-z]/, (c) => (c === "A" ? "B" : "A")),
      forged({ v: 2 }),
      forged({ rv: "12" }),
      forged({ start: "" }),
      forged({ extra: true }),
      forged({ rv: Number(resourceVersion) + 1_000_000 }), // a revision the server never listed at
    ];
    for (const t of tampered) {
      const err = await cms.list("small", { limit: 5, continue: t }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, t).toBe(Code.InvalidArgument);
      expect(err?.rawMessage).toMatch(/^continue: /);
    }
    const negative = await cms.list("small", { limit: -1 }).catch((e: unknown) => ConnectError.from(e));
    expect(negative).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringMatching(/limit/) });
  });

  it("a token whose resource version was compacted fails with OUT_OF_RANGE; a new list works", async () => {
    const first = await cms.list("small", { limit: 10 });
    await cms.create(create(ConfigMapSchema, { metadata: { name: "s-late", namespace: "small" } }));
    await cp.server.compact();
    const err = await cms.list("small", { limit: 10, continue: first.continue }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.OutOfRange, rawMessage: expect.stringMatching(/too old.*list again without continue/) });
    // A fresh list works, and sees the object written after the expired one began.
    const all = await listAllPages(cms, "small", { pageSize: 7 });
    expect(names(all.items)).toContain("s-late");
    expect(all.items).toHaveLength(31);
  });
});

function skiffctl(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done, fail) => {
    const env = { ...process.env, SKIFF_SERVER: cp.server.url, SKIFF_CONFIG: adminConfigFile(), NO_COLOR: "1" };
    const child = spawn(process.execPath, [join(ROOT, "cmd", "skiffctl.ts"), ...args], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, out, err }));
  });
}
