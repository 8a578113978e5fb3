// One API, every protocol on the one port: plain gRPC (served by the direct path), gRPC with
// compressed messages, the Connect protocol (binary and JSON) and gRPC-Web (served by connect) must
// answer alike — same objects, same error codes and messages, watches that start and end alike.
// Skiff's own client transport (internal/client/grpc-transport.ts) is one of the clients.
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, compressionGzip } from "@connectrpc/connect-node";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapService } from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { WatchEventType } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { createGrpcTransport as createSkiffTransport } from "../../internal/client/grpc-transport.ts";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { getTls } from "../harness/pki.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

const transports: Record<string, () => Transport> = {
  "gRPC, Skiff's client transport": () => createSkiffTransport({ tls: cp.pki.adminNodeOptions, baseUrl: cp.server.url }),
  "gRPC (direct path)": () => createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url }),
  "gRPC, gzip-compressed requests": () =>
    createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, sendCompression: compressionGzip, compressMinBytes: 0 }),
  "Connect binary": () => createConnectTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, httpVersion: "2" }),
  "Connect JSON over HTTP/1.1": () => createConnectTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, httpVersion: "1.1", useBinaryFormat: false }),
  "gRPC-Web": () => createGrpcWebTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, httpVersion: "2" }),
};

describe.each(Object.entries(transports))("%s", (name, make) => {
  let client: Client<typeof ConfigMapService>;
  const cmName = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/-$/, "");
  beforeAll(() => {
    client = createClient(ConfigMapService, make());
  });

  it("creates, gets and lists", async () => {
    const created = await client.create({ configMap: configMap(cmName, { k: "v" }) });
    expect(created.configMap?.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    const got = await client.get({ namespace: "default", name: cmName });
    expect(got.configMap?.data).toEqual({ k: "v" });
    const listed = await client.list({ namespace: "default" });
    expect(listed.items.map((c) => c.metadata?.name)).toContain(cmName);
  });

  it("reports errors with their code and the whole message", async () => {
    const err = await client.get({ namespace: "default", name: "nope-ü%" }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe('configmap "nope-ü%" not found');
    const bad = await client.create({ configMap: configMap("Bad_Name") }).catch((e) => ConnectError.from(e));
    expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    expect((bad as ConnectError).rawMessage).toContain("metadata.name");
  });

  it("watches: initial state, a change, then a deadline ends the stream with DEADLINE_EXCEEDED", async () => {
    const seen: string[] = [];
    const stream = client.watch({ namespace: "default", fieldSelector: `metadata.name=${cmName}` }, { timeoutMs: 1500 });
    let changed = false;
    const err = await (async () => {
      for await (const ev of stream) {
        seen.push(`${WatchEventType[ev.type]} ${ev.configMap?.data?.k ?? ""}`);
        if (ev.type === WatchEventType.BOOKMARK && !changed) {
          changed = true;
          const cur = (await client.get({ namespace: "default", name: cmName })).configMap!;
          cur.data = { k: "v2" };
          await client.update({ configMap: cur });
        }
      }
    })().catch((e) => ConnectError.from(e));
    expect(seen.slice(0, 3)).toEqual(["ADDED v", "BOOKMARK ", "MODIFIED v2"]);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
  });
});

describe("the direct gRPC path", () => {
  it("answers with the same objects as connect, resource version included (stored bytes reused)", async () => {
    const direct = createClient(ConfigMapService, createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url }));
    const viaConnect = createClient(ConfigMapService, createConnectTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url, httpVersion: "2" }));
    const created = (await direct.create({ configMap: configMap("same-bytes", { a: "1" }) })).configMap!;
    expect(Number(created.metadata!.resourceVersion)).toBeGreaterThan(0);
    const got = (await direct.get({ namespace: "default", name: "same-bytes" })).configMap!;
    expect(got).toEqual((await viaConnect.get({ namespace: "default", name: "same-bytes" })).configMap);
    expect(got).toEqual(created);
    const listed = await direct.list({ namespace: "default" });
    expect(listed.items).toEqual((await viaConnect.list({ namespace: "default" })).items);
    expect(listed.items.find((c) => c.metadata?.name === "same-bytes")).toEqual(created);
    got.data = { a: "2" };
    const updated = (await direct.update({ configMap: got })).configMap!;
    expect(Number(updated.metadata!.resourceVersion)).toBeGreaterThan(Number(created.metadata!.resourceVersion));
    expect(updated).toEqual((await viaConnect.get({ namespace: "default", name: "same-bytes" })).configMap);
  });

  it("counts its calls in /metrics like connect's", async () => {
    const client = createClient(ConfigMapService, createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url }));
    await client.get({ namespace: "default", name: "not-there" }).catch(() => undefined);
    const text = (await getTls(`${cp.server.url}/metrics`, cp.pki.adminNodeOptions)).body;
    expect(text).toMatch(/skiff_apiserver_requests_total\{service="skiff.v1alpha1.ConfigMapService",method="Get",code="not_found"\} [1-9]/);
  });

  it("refuses a body that is not one gRPC message, and keeps serving", async () => {
    const session = http2.connect(cp.server.url, cp.pki.adminNodeOptions);
    try {
      const status = await new Promise<{ status: string | undefined; message: string | undefined }>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/skiff.v1alpha1.ConfigMapService/Get",
          "content-type": "application/grpc",
          te: "trailers",
        });
        req.on("response", (h) => {
          if (h["grpc-status"]) resolve({ status: String(h["grpc-status"]), message: String(h["grpc-message"]) });
        });
        req.on("trailers", (t) => resolve({ status: String(t["grpc-status"]), message: String(t["grpc-message"]) }));
        req.on("error", reject);
        req.resume();
        req.end(Buffer.from([0, 0, 0, 0, 9, 1, 2]));
      });
      expect(status.status).toBe(String(Code.Internal));
      expect(status.message).toContain("exactly one request message");
    } finally {
      session.close();
    }
    const client = createClient(ConfigMapService, createGrpcTransport({ nodeOptions: cp.pki.adminNodeOptions, baseUrl: cp.server.url }));
    expect((await client.list({ namespace: "default" })).items.length).toBeGreaterThan(0);
  });
});

describe("Skiff's client transport", () => {
  const watchers = () => cp.server.caches.get("ConfigMap")!.watcherCount();

  // (connect's createClient hides the iterator's return(): a caller that stops reading must abort.)
  it("cancels the server's watch when the caller aborts", async () => {
    const client = createClient(ConfigMapService, createSkiffTransport({ tls: cp.pki.adminNodeOptions, baseUrl: cp.server.url }));
    const before = watchers();
    const ac = new AbortController();
    const aborted = (async () => {
      for await (const ev of client.watch({ namespace: "default" }, { signal: ac.signal })) {
        if (ev.type === WatchEventType.BOOKMARK) ac.abort();
      }
    })().catch((e) => ConnectError.from(e));
    expect(((await aborted) as ConnectError).code).toBe(Code.Canceled);
    await expect.poll(watchers, { timeout: 5000 }).toBe(before);
  });

  it("refuses a response larger than readMaxBytes with RESOURCE_EXHAUSTED", async () => {
    const small = createClient(ConfigMapService, createSkiffTransport({ tls: cp.pki.adminNodeOptions, baseUrl: cp.server.url, readMaxBytes: 100 }));
    const err = await small.list({ namespace: "default" }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toMatch(/larger than 100/);
  });

  it("reports a server that is not there as UNAVAILABLE with the reason", async () => {
    const client = createClient(ConfigMapService, createSkiffTransport({ baseUrl: "https://127.0.0.1:1", tls: cp.pki.adminNodeOptions }));
    const err = await client.get({ namespace: "default", name: "x" }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toMatch(/ECONNREFUSED/);
  });
});
