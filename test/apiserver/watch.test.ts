// Watch on a real etcd: resumes without loss, OUT_OF_RANGE once history is compacted, selectors,
// heartbeats, and one etcd watch per kind however many clients watch.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kinds } from "../../internal/api/registry.ts";
import type { WatchEvent } from "../../internal/client/resource-client.ts";
import { configMap, pod } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { getTls } from "../harness/pki.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane({ watchCacheSize: 50 });
});
afterAll(async () => {
  await cp?.stop();
});

/** Collects events from a watch until `until` says stop (or the time runs out). */
async function collect<T>(it: AsyncIterable<WatchEvent<T>>, until: (evs: WatchEvent<T>[]) => boolean, ms = 10_000): Promise<WatchEvent<T>[]> {
  const out: WatchEvent<T>[] = [];
  const timer = setTimeout(() => {
    throw new Error(`watch timed out after ${ms} ms with ${out.length} events`);
  }, ms);
  try {
    for await (const ev of it) {
      out.push(ev);
      if (until(out)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

const names = (evs: WatchEvent<any>[]) => evs.filter((e) => e.type !== "BOOKMARK").map((e) => `${e.type} ${e.object.metadata.name}`);

describe("watch", () => {
  it("starts with the current state, a BOOKMARK, then live events", async () => {
    const cms = cp.client("ConfigMap");
    await cms.create(configMap("w-initial"));
    const ac = new AbortController();
    const stream = cms.watch("default", { labelSelector: "", signal: ac.signal });
    const it = stream[Symbol.asyncIterator]();
    const seen: WatchEvent<any>[] = [];
    for (;;) {
      const { value } = await it.next();
      seen.push(value);
      if (value.type === "BOOKMARK") break;
    }
    expect(names(seen)).toContain("ADDED w-initial");
    await cms.create(configMap("w-live"));
    const next = await it.next();
    expect(next.value.type).toBe("ADDED");
    expect(next.value.object.metadata.name).toBe("w-live");
    ac.abort();
  });

  it("resumes across an apiserver restart with no event lost or repeated", async () => {
    const cms = cp.client("ConfigMap");
    const { resourceVersion: start } = await cms.list("default");
    const ac = new AbortController();
    const live: WatchEvent<any>[] = [];
    const reader = (async () => {
      try {
        for await (const ev of cms.watch("default", { resourceVersion: start, signal: ac.signal })) live.push(ev);
      } catch {
        // the restart cuts the stream
      }
    })();
    await cms.create(configMap("r-1"));
    await cms.create(configMap("r-2"));
    await expect.poll(() => names(live).length, { timeout: 5000 }).toBe(2);
    const lastRv = live.filter((e) => e.type !== "BOOKMARK").at(-1)!.object.metadata.resourceVersion;
    await cp.restartApiServer();
    await reader;
    // While no one watched:
    await cms.create(configMap("r-3"));
    const r2 = await cms.get("default", "r-2");
    r2.data = { changed: "yes" };
    await cms.update(r2);
    await cms.delete("default", "r-1");
    const ac2 = new AbortController();
    const resumed = await collect(cms.watch("default", { resourceVersion: lastRv, signal: ac2.signal }), (e) => names(e).length >= 3).finally(() => ac2.abort());
    expect(names(resumed)).toEqual(["ADDED r-3", "MODIFIED r-2", "DELETED r-1"]);
    ac.abort();
  }, 60_000);

  it("OUT_OF_RANGE for a resourceVersion older than the compacted history", async () => {
    const cms = cp.client("ConfigMap");
    const { resourceVersion: old } = await cms.list("default");
    for (let i = 0; i < 5; i++) await cms.create(configMap(`c-${i}`));
    await cp.server.compact();
    let code: Code | undefined;
    try {
      for await (const _ of cms.watch("default", { resourceVersion: old })) break;
    } catch (e) {
      code = ConnectError.from(e).code;
    }
    expect(code).toBe(Code.OutOfRange);
    // A fresh list gives a version that works.
    const { resourceVersion: fresh } = await cms.list("default");
    const ac = new AbortController();
    const p = collect(cms.watch("default", { resourceVersion: fresh, signal: ac.signal }), (e) => names(e).length === 1);
    await cms.create(configMap("after-compact"));
    expect(names(await p.finally(() => ac.abort()))).toEqual(["ADDED after-compact"]);
  });

  it("OUT_OF_RANGE when a resume falls out of the bounded watch history", async () => {
    const cms = cp.client("ConfigMap");
    const { resourceVersion: old } = await cms.list("default");
    for (let i = 0; i < 120; i++) await cms.create(configMap(`h-${i}`)); // > 2 × watchCacheSize
    let code: Code | undefined;
    try {
      for await (const _ of cms.watch("default", { resourceVersion: old })) break;
    } catch (e) {
      code = ConnectError.from(e).code;
    }
    expect(code).toBe(Code.OutOfRange);
  });

  it("label and field selectors filter watch events; objects leaving the selector are DELETED", async () => {
    const pods = cp.client("Pod");
    const { resourceVersion } = await pods.list("default");
    const ac = new AbortController();
    const web = collect(pods.watch("default", { resourceVersion, labelSelector: "app=web", signal: ac.signal }), (e) => names(e).length === 3);
    const onN1 = collect(pods.watch("", { resourceVersion, fieldSelector: "spec.nodeName=n1", signal: ac.signal }), (e) => names(e).length === 1);
    await pods.create(pod("wf-db", { labels: { app: "db" } }));
    await pods.create(pod("wf-web", { labels: { app: "web" }, nodeName: "n1" }));
    const p = await pods.get("default", "wf-web");
    p.metadata!.labels = { app: "other" };
    await pods.update(p);
    const p2 = await pods.get("default", "wf-db");
    p2.metadata!.labels = { app: "web" };
    await pods.update(p2);
    expect(names(await web)).toEqual(["ADDED wf-web", "DELETED wf-web", "ADDED wf-db"]);
    expect(names(await onN1)).toEqual(["ADDED wf-web"]);
    ac.abort();
  });

  it("idle watches get BOOKMARK heartbeats", async () => {
    const ac = new AbortController();
    const { resourceVersion } = await cp.client("Lease").list("default");
    const evs = await collect(cp.client("Lease").watch("default", { resourceVersion, signal: ac.signal }), (e) => e.length >= 2, 8000).finally(() => ac.abort());
    expect(evs.every((e) => e.type === "BOOKMARK")).toBe(true);
    expect(Number(evs[1].object.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(resourceVersion));
  });

  it("200 concurrent watchers cost one etcd watch per kind", async () => {
    // A control plane of its own: the etcd watches of this file's restarted apiserver are released
    // by the etcd3 client on its own schedule, and must not blur the count.
    const own = await startControlPlane();
    try {
      const watchersInEtcd = async () => {
        const text = await (await fetch(own.etcd.metricsUrl)).text();
        const m = /^etcd_debugging_mvcc_watcher_total (\d+)/m.exec(text);
        return Number(m?.[1]);
      };
      // The watch cache: one per kind (etcd3 opens them in the background after the first list).
      await expect.poll(watchersInEtcd, { timeout: 10_000, interval: 100 }).toBe(kinds.length);
      const ac = new AbortController();
      const pods = own.client("Pod");
      const { resourceVersion } = await pods.list("default");
      const streams = Array.from({ length: 200 }, () => collect(pods.watch("default", { resourceVersion, signal: ac.signal }), (e) => names(e).length === 1, 20_000));
      await new Promise((r) => setTimeout(r, 500));
      await pods.create(pod("fanout"));
      const results = await Promise.all(streams);
      expect(results.every((r) => names(r)[0] === "ADDED fanout")).toBe(true);
      expect(await watchersInEtcd()).toBe(kinds.length);
      const metrics = (await getTls(`${own.server.url}/metrics`, own.pki.adminCredentials as { ca: string; cert: string; key: string })).body;
      expect(metrics).toMatch(/skiff_apiserver_watchers\{kind="Pod"\} 20\d/);
      ac.abort();
    } finally {
      await own.stop();
    }
  }, 60_000);
});
