// etcd gone (its port refuses connections, as when the process is killed): every verb answers
// UNAVAILABLE on every protocol, well within its deadline, in Skiff's words; /readyz says so;
// once etcd is back, everything works again. etcd sits behind a loopback proxy the test can
// take down and bring back on the same port.
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { startApiServer, type ApiServer } from "../../internal/apiserver/server.ts";
import { createGrpcTransport as createSkiffTransport } from "../../internal/client/grpc-transport.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import type { Store } from "../../internal/storage/store.ts";
import { pod } from "../fixtures/objects.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { getTls, testPki, type TestPki } from "../harness/pki.ts";
import { LOOPBACK } from "../harness/ports.ts";

/** A proxy to etcd that can refuse connections (down) and accept them again on its port (up). */
async function startSwitchableProxy(target: URL) {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const up = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(port, LOOPBACK, resolve));
    port = (server.address() as { port: number }).port;
  };
  await up();
  return {
    endpoint: `https://${LOOPBACK}:${port}`, // etcd's TLS passes through
    up,
    async down() {
      const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

let etcd: EtcdServer;
let proxy: Awaited<ReturnType<typeof startSwitchableProxy>>;
let store: Store;
let server: ApiServer;
let pki: TestPki;
beforeAll(async () => {
  pki = await testPki();
  etcd = await startEtcd();
  proxy = await startSwitchableProxy(new URL(etcd.endpoint));
  store = createEtcdStore({ endpoints: [proxy.endpoint], prefix: "/etcd-down", tls: etcd.tls });
  server = await startApiServer({ store, tls: pki.serving, port: 0, heartbeatMs: 1000 });
}, 60_000);
afterAll(async () => {
  await server?.close();
  await store?.close();
  await etcd?.stop();
});

const transports: Record<string, () => Transport> = {
  gRPC: () => createSkiffTransport({ baseUrl: server.url, tls: pki.adminNodeOptions }),
  Connect: () => createConnectTransport({ baseUrl: server.url, nodeOptions: pki.adminNodeOptions, httpVersion: "2" }),
  "gRPC-Web": () => createGrpcWebTransport({ baseUrl: server.url, nodeOptions: pki.adminNodeOptions, httpVersion: "2" }),
};

/** Every verb of the Pod service, as a call that resolves to its outcome's code name. */
function verbs(client: Client<typeof PodService>, tag: string, nextPage: string): Record<string, () => Promise<string>> {
  const opts = { timeoutMs: 5000 }; // "quickly": an answer, not a deadline running out
  const outcome = (p: Promise<unknown>) => p.then(() => "OK", (e) => `${Code[ConnectError.from(e).code]}: ${ConnectError.from(e).rawMessage}`);
  const existing = `existing-${tag}`;
  return {
    Get: () => outcome(client.get({ namespace: "default", name: existing }, opts)),
    List: () => outcome(client.list({ namespace: "default" }, opts)),
    "List (paged)": () => outcome(client.list({ namespace: "default", limit: 1n }, opts)),
    "List (next page)": () => outcome(client.list({ namespace: "default", limit: 1n, continue: nextPage }, opts)),
    Create: () => outcome(client.create({ pod: pod(`new-${tag}-${Math.random().toString(36).slice(2, 8)}`) }, opts)),
    Update: () => outcome(client.update({ pod: pod(existing) }, opts)),
    UpdateStatus: () => outcome(client.updateStatus({ pod: pod(existing) }, opts)),
    Delete: () => outcome(client.delete({ namespace: "default", name: `deletable-${tag}` }, opts)),
    Watch: () =>
      outcome(
        (async () => {
          for await (const _ev of client.watch({ namespace: "default" }, opts)) return;
        })(),
      ),
    Bind: () => outcome(client.bind({ namespace: "default", name: `bindable-${tag}`, nodeName: "node-1" }, opts)),
  };
}

describe("etcd down", () => {
  it.each(Object.keys(transports))("every verb answers UNAVAILABLE over %s, and works again once etcd is back", async (name) => {
    const client = createClient(PodService, transports[name]());
    const tag = name.toLowerCase().replace(/[^a-z]/g, "");
    for (const n of [`existing-${tag}`, `deletable-${tag}`, `bindable-${tag}`]) await client.create({ pod: pod(n) });
    // A continue token taken while etcd is up: its page is read from storage, not the cache.
    const nextPage = (await client.list({ namespace: "default", limit: 1n })).continue;
    expect(nextPage).not.toBe("");

    await proxy.down();
    try {
      const outcomes: Record<string, string> = {};
      for (const [verb, run] of Object.entries(verbs(client, tag, nextPage))) outcomes[verb] = await run();
      for (const verb of Object.keys(outcomes)) expect(`${verb} → ${outcomes[verb]}`).toBe(`${verb} → Unavailable: storage unavailable: try again shortly`);
      expect((await getTls(`${server.url}/readyz`, { ca: pki.ca.cert })).status).toBe(503);
    } finally {
      await proxy.up();
    }

    await expect.poll(async () => (await getTls(`${server.url}/readyz`, { ca: pki.ca.cert })).status, { timeout: 15_000, interval: 200 }).toBe(200);
    const after = verbs(client, tag, nextPage);
    // Watch is the stream's first event (the initial ADDED); Update and UpdateStatus of a pod
    // built from scratch are refused by validation or taken, but not for lack of storage.
    for (const verb of ["Get", "List", "List (paged)", "List (next page)", "Create", "Watch", "Bind", "Delete"]) expect(`${verb} → ${await after[verb]()}`).toBe(`${verb} → OK`);
  }, 60_000);
});
