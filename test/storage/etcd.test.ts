// The shared Store conformance suite on a real etcd, plus what only etcd can show: watches are
// multiplexed and released on abort (read from etcd's own metrics), and losing etcd mid-watch.

import { createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { b, describeStoreConformance, expectStoreError, str } from "../../internal/storage/conformance.ts";
import { startWatch } from "../../internal/storage/conformance-watch.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import { StoreError } from "../../internal/storage/store.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { freePort, LOOPBACK } from "../harness/ports.ts";
import { startTcpProxy } from "./tcp-proxy.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

let stores = 0;
describeStoreConformance("etcd", async () => {
  // One etcd for the whole file; every test gets its own key prefix.
  const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: `/conformance/${++stores}`, tls: etcd.tls });
  return { store, cleanup: () => store.close() };
});

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found at ${url}`);
  return Number(line.slice(name.length + 1));
}

describe("etcd store specifics", () => {
  it("multiplexes watches on one gRPC stream and releases each when its signal aborts", async () => {
    const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/leak", tls: etcd.tls });
    try {
      const watchers0 = await metric(etcd.metricsUrl, "etcd_debugging_mvcc_watcher_total");
      const streams0 = await metric(etcd.metricsUrl, "etcd_debugging_mvcc_watch_stream_total");
      expect(watchers0).toBe(0); // every earlier test released its watchers too
      const r0 = await store.currentRevision();
      const watches = Array.from({ length: 20 }, () => startWatch(store, "/x/", r0 + 1));
      await store.create("/x/a", b("1"));
      await Promise.all(watches.map((w) => w.waitFor(1)));
      expect(await metric(etcd.metricsUrl, "etcd_debugging_mvcc_watcher_total")).toBe(watchers0 + 20);
      expect(await metric(etcd.metricsUrl, "etcd_debugging_mvcc_watch_stream_total")).toBe(streams0 + 1);
      await Promise.all(watches.map((w) => w.stop()));
      await vi.waitFor(async () => expect(await metric(etcd.metricsUrl, "etcd_debugging_mvcc_watcher_total")).toBe(watchers0), {
        timeout: 5000,
      });
    } finally {
      await store.close();
    }
  });

  it("reads a range (or a limited page) too large for one response in pages, asking again smaller when one is too large", async () => {
    // Responses over 1 MiB are refused: the first page (32 values of 200 KB) is, the smaller ones are not.
    const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/paged", tls: etcd.tls, maxResponseBytes: 1024 * 1024 });
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `/p/${String(i).padStart(2, "0")}`);
      for (const key of keys) await store.create(key, new Uint8Array(200_000).fill(key.charCodeAt(4)));
      const all = await store.list("/p/");
      expect(all.items.map((kv) => kv.key)).toEqual(keys);
      expect(all.items.every((kv) => kv.value.byteLength === 200_000)).toBe(true);
      expect(all.remaining).toBe(0);
      // So does one page with a limit: it comes whole, in several responses.
      const page = await store.list("/p/", { limit: 30, startKey: "/p/05" });
      expect(page.items.map((kv) => kv.key)).toEqual(keys.slice(5, 35));
      expect(page).toMatchObject({ revision: all.revision, remaining: 5 });
      expect(await store.ready()).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("lists a response far larger than one HTTP/2 frame intact", async () => {
    const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/big", tls: etcd.tls });
    try {
      // 300 distinct 4 KiB values: about 1.2 MB in one Range response, some hundred DATA frames.
      const value = (i: number) => new Uint8Array(4096).map((_, j) => (i * 31 + j) % 251);
      for (let i = 0; i < 300; i += 100) {
        await store.txn(Array.from({ length: 100 }, (_, k) => ({ op: "create" as const, key: `/k${String(i + k).padStart(3, "0")}`, value: value(i + k) })));
      }
      const { items } = await store.list("/");
      expect(items.map((kv) => kv.key)).toEqual(Array.from({ length: 300 }, (_, i) => `/k${String(i).padStart(3, "0")}`));
      items.forEach((kv, i) => expect(kv.value).toEqual(value(i)));
    } finally {
      await store.close();
    }
  });

  it("keeps each store's keys under its prefix", async () => {
    const a = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/iso/a", tls: etcd.tls });
    const bStore = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/iso/b", tls: etcd.tls });
    const root = createEtcdStore({ endpoints: [etcd.endpoint], tls: etcd.tls });
    try {
      await a.create("/k", b("from a"));
      await bStore.create("/k", b("from b"));
      expect((await a.list("")).items.map((kv) => [kv.key, str(kv.value)])).toEqual([["/k", "from a"]]);
      expect((await root.list("/iso/")).items.map((kv) => kv.key)).toEqual(["/iso/a/k", "/iso/b/k"]);
    } finally {
      await Promise.all([a.close(), bStore.close(), root.close()]);
    }
  });
});

describe("etcd connection trouble", () => {
  it("resumes a watch after a dropped connection when etcd is still there, losing nothing", async () => {
    const url = new URL(etcd.endpoint);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    const viaProxy = createEtcdStore({ endpoints: [proxy.endpoint], prefix: "/cut", tls: etcd.tls });
    const direct = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/cut", tls: etcd.tls });
    try {
      const r0 = await direct.currentRevision();
      const w = startWatch(viaProxy, "/", r0 + 1);
      for (let i = 0; i < 3; i++) await direct.create(`/k${i}`, b(""));
      await w.waitFor(3);
      proxy.cutAll();
      for (let i = 3; i < 6; i++) await direct.create(`/k${i}`, b(""));
      const events = await w.waitFor(6);
      expect(events.map((e) => e.modRevision)).toEqual([1, 2, 3, 4, 5, 6].map((i) => r0 + i));
      await direct.create("/k6", b(""));
      expect(await w.waitFor(7)).toHaveLength(7);
      expect(w.error()).toBeUndefined();
      await w.stop();
    } finally {
      await Promise.all([viaProxy.close(), direct.close()]);
      await proxy.close();
    }
  });

  let own: EtcdServer | undefined;
  afterAll(async () => {
    await own?.stop();
  });

  it("with several endpoints, moves past one that is down: reads and never-sent writes within the same call", async () => {
    const dead = `https://${LOOPBACK}:${await freePort()}`; // nothing listens there
    const store = createEtcdStore({ endpoints: [dead, etcd.endpoint], prefix: "/failover", tls: etcd.tls });
    const direct = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/failover", tls: etcd.tls });
    const reader = createEtcdStore({ endpoints: [dead, etcd.endpoint], prefix: "/failover", tls: etcd.tls });
    try {
      // The connection was refused, so the write never left: it goes to the next endpoint, once.
      const created = await store.create("/a", b("1"));
      expect(str((await direct.get("/a"))!.value)).toBe("1");
      expect(created.modRevision).toBe((await direct.get("/a"))!.modRevision);
      // A read may be repeated, so it moves on within the same call.
      expect(await reader.get("/a")).toEqual({ ...created, createRevision: created.modRevision });
      expect(await reader.ready()).toBe(true);
    } finally {
      await Promise.all([store.close(), direct.close(), reader.close()]);
    }
  });

  it("gives up on a call after requestTimeoutMs when etcd accepts the connection but never answers", async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, LOOPBACK, resolve));
    const port = (silent.address() as { port: number }).port;
    const store = createEtcdStore({ endpoints: [`https://${LOOPBACK}:${port}`], prefix: "/silent", tls: etcd.tls, requestTimeoutMs: 300 });
    try {
      await expectStoreError(store.get("/a"), "Unavailable");
      await expectStoreError(store.create("/a", b("")), "Unavailable");
    } finally {
      await store.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("ends a running watch with Unavailable, fails calls with Unavailable, and is not ready", async () => {
    own = await startEtcd();
    const store = createEtcdStore({ endpoints: [own.endpoint], prefix: "/gone", tls: own.tls, requestTimeoutMs: 3000 });
    try {
      const r0 = await store.currentRevision();
      const w = startWatch(store, "/", r0 + 1);
      await store.create("/a", b("1"));
      await w.waitFor(1);
      await own.stop();
      await w.settled();
      expect(w.error()).toBeInstanceOf(StoreError);
      expect((w.error() as StoreError).code).toBe("Unavailable");
      await expectStoreError(store.get("/a"), "Unavailable");
      await expectStoreError(store.create("/b", b("")), "Unavailable");
      expect(await store.ready()).toBe(false);
      // A new watch against the dead endpoint fails the same way rather than hanging.
      const w2 = startWatch(store, "/", r0 + 1);
      await w2.settled();
      expect((w2.error() as StoreError).code).toBe("Unavailable");
    } finally {
      await store.close();
    }
  });
});
