// The informer end to end on a real etcd: etcd store + apiserver + informer over gRPC, with the
// informer's connection cut in the middle of a stream of writes, an apiserver restart while
// writes keep coming, and a compaction while the informer is away.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { createInformer, keyOf, type Informer, type InformerLogger } from "../../internal/client/informer.ts";
import { createResourceClient, type ResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { startCuttableProxy, type CuttableProxy } from "./tcp-proxy.ts";

let cp: ControlPlane;
let proxy: CuttableProxy;
let api: ResourceClient<ConfigMap>;
const calls = { lists: 0, watches: 0 };
let inf: Informer<ConfigMap>;
const seen: string[] = [];
const writes: string[] = [];
const logs: { level: string; msg: string }[] = [];

const line = (type: string, o: ConfigMap) => `${type} ${keyOf(o)} ${o.metadata?.resourceVersion}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => unknown, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

// Writes may fail while the apiserver restarts, with the outcome unknown (the request may have
// been applied before the connection died). One writer, so re-reading tells which it was.
const transient = (err: unknown) => {
  const code = ConnectError.from(err).code;
  return [Code.Unavailable, Code.Canceled, Code.Aborted, Code.Internal, Code.Unknown].includes(code);
};

async function createLogged(name: string): Promise<void> {
  for (;;) {
    try {
      const o = await api.create(create(ConfigMapSchema, { metadata: { name, namespace: "default" }, data: { name } }));
      writes.push(line("ADDED", o));
      return;
    } catch (err) {
      if (ConnectError.from(err).code === Code.AlreadyExists) {
        // An earlier attempt went through (nothing else writes this object).
        writes.push(line("ADDED", await api.get("default", name)));
        return;
      }
      if (!transient(err)) throw err;
      await sleep(20);
    }
  }
}

async function updateLogged(name: string, n: number): Promise<void> {
  const o = await api.get("default", name);
  o.data = { n: String(n) };
  writes.push(line("MODIFIED", await api.update(o)));
}

async function removeLogged(name: string): Promise<void> {
  writes.push(line("DELETED", (await api.delete("default", name)).object));
}

const truth = async () => (await api.list("default")).items.map((o) => `${keyOf(o)} ${o.metadata!.resourceVersion}`).sort();
const cached = () => inf.list().map((o) => `${keyOf(o)} ${o.metadata!.resourceVersion}`).sort();

beforeAll(async () => {
  cp = await startControlPlane({ heartbeatMs: 200, watchCacheSize: 50 });
  api = cp.client<ConfigMap>("ConfigMap");
  proxy = await startCuttableProxy(cp.server.url);
  const base = createResourceClient<ConfigMap>(createApiTransport(proxy.url, cp.pki.adminCredentials), "ConfigMap");
  const client: ResourceClient<ConfigMap> = {
    ...base,
    // Lists that succeeded: a relist, not an attempt that hit a dead connection.
    list: async (ns, o) => {
      const res = await base.list(ns, o);
      calls.lists++;
      return res;
    },
    watch: (ns, o) => (calls.watches++, base.watch(ns, o)),
  };
  const at = (level: string) => (_obj: object, msg: string) => void logs.push({ level, msg });
  const log: InformerLogger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  inf = createInformer(client, { log, backoff: { initialMs: 20, maxMs: 300 } });
  inf.onAdd((o) => void seen.push(line("ADDED", o)));
  inf.onUpdate((_old, o) => void seen.push(line("MODIFIED", o)));
  inf.onDelete((o) => void seen.push(line("DELETED", o)));
});

afterAll(async () => {
  await inf?.stop();
  await proxy?.close();
  await cp?.stop();
});

describe("informer on etcd", () => {
  it("syncs the objects already stored", async () => {
    for (let i = 0; i < 5; i++) await createLogged(`obj-${i}`);
    inf.start();
    await inf.waitForSync();
    expect(seen.slice().sort()).toEqual(writes.slice().sort());
    expect(cached()).toEqual(await truth());
  });

  it("resumes cut watches without losing or repeating an event", async () => {
    const from = writes.length;
    let cuts = 0;
    const exists = new Set(inf.listKeys().map((k) => k.split("/")[1]));
    for (let i = 1; i <= 200; i++) {
      const name = `obj-${i % 7}`;
      const victim = `obj-${(i / 40) % 5}`;
      if (i % 40 === 0 && exists.delete(victim)) await removeLogged(victim);
      else if (exists.has(name)) await updateLogged(name, i);
      else {
        await createLogged(name); // new, or again after a delete
        exists.add(name);
      }
      if (i % 20 === 0) {
        proxy.cut();
        cuts++;
      }
    }
    await eventually(() => expect(seen.length).toBeGreaterThanOrEqual(writes.length));
    await sleep(300);
    expect(seen.slice(from)).toEqual(writes.slice(from));
    expect(calls.lists).toBe(1);
    expect(calls.watches).toBeGreaterThan(cuts / 2);
    expect(cached()).toEqual(await truth());
  });

  it("carries on across an apiserver restart in the middle of a stream of writes", async () => {
    const from = writes.length;
    const watchesBefore = calls.watches;
    let stop = false;
    // Creates only: should the new apiserver lack the history (a write landed after the old one
    // cut its watches), the informer relists, and a relist reports creates exactly as a watch would.
    const writing = (async () => {
      for (let i = 0; !stop || i < 20; i++) await createLogged(`r-${String(i).padStart(4, "0")}`);
    })();
    writing.catch(() => {}); // awaited below; do not let an early failure go unhandled meanwhile
    await eventually(() => expect(writes.length - from).toBeGreaterThan(10));
    await cp.restartApiServer();
    await sleep(300);
    stop = true;
    await writing;

    await eventually(() => expect(seen.length).toBeGreaterThanOrEqual(writes.length));
    await sleep(300);
    expect(seen.slice(from)).toEqual(writes.slice(from)); // each once, in order
    expect(calls.watches).toBeGreaterThan(watchesBefore);
    expect(cached()).toEqual(await truth());
  });

  it("relists after an etcd compaction while it was away, reporting exactly the difference", async () => {
    await eventually(async () => expect(cached()).toEqual(await truth()));
    const listsBefore = calls.lists;
    proxy.block();
    await sleep(50);
    const gapStart = writes.length;
    for (let i = 0; i < 120; i++) await updateLogged("obj-6", i); // beyond the watch cache's 50
    await removeLogged("obj-5");
    await createLogged("late");
    await cp.server.compact();
    seen.length = 0;
    proxy.unblock();

    const want = await truth();
    await eventually(() => expect(cached()).toEqual(want));
    await sleep(300);
    expect(calls.lists).toBe(listsBefore + 1);
    expect(logs.some((e) => /too old; relisting/.test(e.msg))).toBe(true);
    const lastUpdate = writes.slice(gapStart).filter((l) => l.startsWith("MODIFIED default/obj-6 ")).at(-1)!;
    const obj5 = [...writes.slice(0, gapStart)].reverse().find((l) => / default\/obj-5 /.test(l))!;
    expect(seen.slice().sort()).toEqual(
      [lastUpdate, `DELETED default/obj-5 ${obj5.split(" ")[2]}`, writes.at(-1)!].sort(),
    );

    // Watching again from the relist's version.
    await updateLogged("obj-6", 1000);
    await eventually(() => expect(seen.at(-1)).toBe(writes.at(-1)));
  });
});
