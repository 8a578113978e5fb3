// The apiserver's direct gRPC path (internal/apiserver/grpc-direct.ts) against an independent
// client, @grpc/grpc-js with the API's .proto files: unary calls and Watch, metadata and
// trailers, status codes alike to connect's for the same errors, deadlines, cancellation, flow
// control with a paused reader, GOAWAY and reconnect, oversized and malformed requests.
// The apiserver comes from startApiServerUnderTest (real etcd, TLS); every client calls as the test PKI's admin.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ClientError, Status, createChannel, createClient as createNiceClient } from "nice-grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapService, ConfigMapServiceGetRequestSchema, ConfigMapServiceWatchRequestSchema } from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { configMap } from "../fixtures/objects.ts";
import { loadedTestPki } from "../../internal/pki/testing.ts";
import { getTls } from "../harness/pki.ts";
import { startApiServerUnderTest, type ApiServerUnderTest } from "./apiserver-under-test.ts";
import { adminGrpcCredentials, configMapClient, configMapServiceDefinition, grpcFrame, rawCall, rawSlowRead, rawUpload, unary } from "./grpcjs-client.ts";

// A small per-watch byte budget (the apiserver's watchBufferBytes), so a paused reader is cut soon.
const WATCH_BUFFER_BYTES = 100 * 1024;

let api: ApiServerUnderTest;
let client: any;
beforeAll(async () => {
  api = await startApiServerUnderTest({ watchBufferBytes: WATCH_BUFFER_BYTES });
  client = configMapClient(api.target);
});
afterAll(async () => {
  client?.close();
  await api?.stop();
});

const url = () => api.server.url;
const watchers = () => api.server.caches.get("ConfigMap")!.watcherCount();
const cm = (name: string, data: Record<string, string> = { k: "v" }) => ({ metadata: { name, namespace: "default" }, data });
const statusOf = (p: Promise<unknown>) => p.then(() => undefined, (e: grpc.ServiceError) => e);

/** Events of a grpc-js Watch call, as "TYPE name=value" strings, and how it ended. */
function watchCall(req: object, options: grpc.CallOptions = {}, through: any = client) {
  const call = through.watch(req, new grpc.Metadata(), options) as grpc.ClientReadableStream<any>;
  const events: string[] = [];
  let headers: grpc.Metadata | undefined;
  call.on("metadata", (m) => (headers = m));
  call.on("data", (ev) => events.push(`${String(ev.type).replace("WATCH_EVENT_TYPE_", "")} ${ev.configMap?.metadata?.name ?? ""}=${ev.configMap?.data?.k ?? ""}`));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {}); // the status says it
  return { call, events, status, headers: () => headers };
}

describe("unary calls and Watch", () => {
  it("create and get answer the object; the response carries gRPC headers and an OK status", async () => {
    const headers: grpc.Metadata[] = [];
    const statuses: grpc.StatusObject[] = [];
    const created: any = await new Promise((resolve, reject) => {
      const call = client.create({ configMap: cm("plain") }, new grpc.Metadata(), (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res)));
      call.on("metadata", (m: grpc.Metadata) => headers.push(m));
      call.on("status", (s: grpc.StatusObject) => statuses.push(s));
    });
    expect(created.configMap.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(created.configMap.metadata.resourceVersion)).toBeGreaterThan(0);
    expect(headers[0].get("content-type")).toEqual(["application/grpc+proto"]);
    expect(statuses[0].code).toBe(grpc.status.OK);
    const got: any = await unary(client, "get", { namespace: "default", name: "plain" });
    expect(got.configMap).toEqual(created.configMap);
  });

  it("Watch streams the current state, a BOOKMARK and then changes", async () => {
    await unary(client, "create", { configMap: cm("watched", { k: "1" }) });
    const w = watchCall({ namespace: "default", fieldSelector: "metadata.name=watched" });
    await expect.poll(() => w.events.length).toBe(2);
    const cur: any = await unary(client, "get", { namespace: "default", name: "watched" });
    await unary(client, "update", { configMap: { ...cur.configMap, data: { k: "2" } } });
    await expect.poll(() => w.events).toEqual(["ADDED watched=1", "BOOKMARK =", "MODIFIED watched=2"]);
    w.call.cancel();
    expect((await w.status).code).toBe(grpc.status.CANCELLED);
  });

  it("each watch event carries its own type and the whole object with that write's resource version", async () => {
    // Event frames are assembled from stored bytes, the version and a shared encoding of the type.
    const before: any = await unary(client, "create", { configMap: cm("versions-before") });
    const call = client.watch({ namespace: "default", fieldSelector: "metadata.name=versions", resourceVersion: before.configMap.metadata.resourceVersion }) as grpc.ClientReadableStream<any>;
    const events: any[] = [];
    call.on("data", (ev) => events.push(ev));
    call.on("error", () => {});
    const created: any = await unary(client, "create", { configMap: { ...cm("versions", { k: "1" }), metadata: { name: "versions", namespace: "default", labels: { app: "x" } } } });
    const written: any[] = [created.configMap];
    let cur = created.configMap;
    for (const k of ["2", "3"]) {
      cur = (await unary<any>(client, "update", { configMap: { ...cur, data: { k } } })).configMap;
      written.push(cur);
    }
    await unary(client, "delete", { namespace: "default", name: "versions" });
    await expect.poll(() => events.filter((e) => !String(e.type).endsWith("BOOKMARK")).length).toBe(4);
    const seen = events.filter((e) => !String(e.type).endsWith("BOOKMARK")).map((e) => ({ type: String(e.type).replace("WATCH_EVENT_TYPE_", ""), data: e.configMap.data, meta: e.configMap.metadata }));
    expect(seen.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    expect(seen.map((e) => e.data.k)).toEqual(["1", "2", "3", "3"]);
    expect(seen.map((e) => e.meta.resourceVersion).slice(0, 3)).toEqual(written.map((w) => w.metadata.resourceVersion));
    expect(Number(seen[3].meta.resourceVersion)).toBeGreaterThan(Number(written[2].metadata.resourceVersion));
    for (const e of seen) expect({ uid: e.meta.uid, labels: e.meta.labels, name: e.meta.name }).toEqual({ uid: created.configMap.metadata.uid, labels: { app: "x" }, name: "versions" });
    call.cancel();
  });
});

describe("nice-grpc (async iterables and AbortSignal over grpc-js)", () => {
  it("gets errors as ClientErrors with code and message, and an abort ends the server's watch", async () => {
    const channel = createChannel(api.target, adminGrpcCredentials());
    try {
      const nice: any = createNiceClient(configMapServiceDefinition, channel); // methods by their proto names
      const notFound = await nice.Get({ namespace: "default", name: "nope" }).catch((e: unknown) => e);
      expect(notFound).toBeInstanceOf(ClientError);
      expect((notFound as ClientError).code).toBe(Status.NOT_FOUND);
      expect((notFound as ClientError).details).toBe('configmap "nope" not found');
      const before = watchers();
      const ac = new AbortController();
      const seen: string[] = [];
      const ended = (async () => {
        for await (const ev of nice.Watch({ namespace: "default", fieldSelector: "metadata.name=plain" }, { signal: ac.signal })) {
          seen.push(String(ev.type).replace("WATCH_EVENT_TYPE_", ""));
          if (seen.includes("BOOKMARK")) ac.abort();
        }
      })().catch((e: unknown) => e);
      expect((await ended as Error).name).toBe("AbortError");
      expect(seen).toEqual(["ADDED", "BOOKMARK"]);
      await expect.poll(watchers).toBe(before);
    } finally {
      channel.close();
    }
  });
});

describe("what the direct path leaves to connect, and pings", () => {
  it("a grpc-js client that compresses its requests (gzip; served by connect) gets the same objects", async () => {
    const gzip = configMapClient(api.target, { "grpc.default_compression_algorithm": 2 } as grpc.ClientOptions);
    try {
      const created: any = await unary(gzip, "create", { configMap: cm("gzipped", { k: "v".repeat(10_000) }) });
      const plain: any = await unary(client, "get", { namespace: "default", name: "gzipped" });
      expect(plain.configMap).toEqual(created.configMap);
      expect((await unary(gzip, "get", { namespace: "default", name: "gzipped" })).configMap).toEqual(created.configMap);
    } finally {
      gzip.close();
    }
  });

  it("a client pinging every 100 ms (grpc-js keepalive) keeps its watch: the server neither chokes nor sends GOAWAY", async () => {
    const pinging = configMapClient(api.target, { "grpc.keepalive_time_ms": 100, "grpc.keepalive_timeout_ms": 1000, "grpc.keepalive_permit_without_calls": 1 } as grpc.ClientOptions);
    const before = watchers();
    try {
      const call = pinging.watch({ namespace: "default", fieldSelector: "metadata.name=pinged" }, new grpc.Metadata()) as grpc.ClientReadableStream<any>;
      const events: string[] = [];
      call.on("data", (ev: any) => events.push(String(ev.type).replace("WATCH_EVENT_TYPE_", "")));
      call.on("error", () => {});
      const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      // Heartbeat BOOKMARKs come every second (heartbeatMs); three of them span ~30 pings.
      await expect.poll(() => events.filter((e) => e === "BOOKMARK").length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      await unary(pinging, "create", { configMap: cm("pinged") });
      await expect.poll(() => events).toContain("ADDED");
      call.cancel();
      expect((await status).code).toBe(grpc.status.CANCELLED);
      await expect.poll(watchers).toBe(before);
    } finally {
      pinging.close();
    }
  });
});

describe("errors", () => {
  // The same mistakes through grpc-js (the direct path) and connect's Connect protocol (connect's
  // handlers): the same code and the same message, non-ASCII and '%' included.
  const connectClient = () => createClient(ConfigMapService, createConnectTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: url(), httpVersion: "2" }));
  const cases: { name: string; direct: () => Promise<unknown>; viaConnect: () => Promise<unknown> }[] = [
    {
      name: "NOT_FOUND",
      direct: () => unary(client, "get", { namespace: "default", name: "nope-ü%" }),
      viaConnect: () => connectClient().get({ namespace: "default", name: "nope-ü%" }),
    },
    {
      name: "ALREADY_EXISTS",
      direct: () => unary(client, "create", { configMap: cm("plain") }),
      viaConnect: () => connectClient().create({ configMap: configMap("plain", { k: "v" }) }),
    },
    {
      name: "INVALID_ARGUMENT (field path)",
      direct: () => unary(client, "create", { configMap: cm("Bad_Name") }),
      viaConnect: () => connectClient().create({ configMap: configMap("Bad_Name", { k: "v" }) }),
    },
    {
      name: "ABORTED (stale resource version)",
      direct: () => unary(client, "update", { configMap: { ...cm("plain"), metadata: { name: "plain", namespace: "default", resourceVersion: "1" } } }),
      viaConnect: () => {
        const stale = configMap("plain", { k: "v" });
        stale.metadata!.resourceVersion = "1";
        return connectClient().update({ configMap: stale });
      },
    },
    {
      name: "INVALID_ARGUMENT from a Watch",
      direct: () => new Promise((resolve, reject) => watchCall({ namespace: "default", resourceVersion: "abc" }).status.then((s) => (s.code ? reject(s) : resolve(s)))),
      viaConnect: async () => {
        for await (const _ of connectClient().watch({ namespace: "default", resourceVersion: "abc" })) void _;
      },
    },
  ];
  it.each(cases)("$name: the same code and message as connect's", async ({ direct, viaConnect }) => {
    const viaGrpcJs = (await statusOf(direct())) as grpc.ServiceError;
    const viaConnectErr = ConnectError.from(await viaConnect().then(() => undefined, (e) => e));
    expect(viaGrpcJs?.code).toBeGreaterThan(0);
    expect(viaGrpcJs.code).toBe(viaConnectErr.code);
    expect(viaGrpcJs.details).toBe(viaConnectErr.rawMessage);
  });

  it("a request larger than the limit is RESOURCE_EXHAUSTED at once: the client is told to stop uploading, nothing is reset", async () => {
    const total = 50 * 1024 * 1024;
    const res = await rawUpload(url(), "/skiff.v1alpha1.ConfigMapService/Create", total);
    expect(res.code).toBe(Code.ResourceExhausted);
    expect(res.rstCode).toBe(0);
    expect(res.sent).toBeLessThan(total / 2);
  });

  it("grpc-js: a request larger than the limit is RESOURCE_EXHAUSTED (not a reset), and the connection keeps serving", async () => {
    const huge = { configMap: { ...cm("huge"), data: { k: "x".repeat(50 * 1024 * 1024) } } };
    const err = (await statusOf(unary(client, "create", huge))) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/larger than/);
    expect((await unary(client, "get", { namespace: "default", name: "plain" })).configMap.metadata.name).toBe("plain");
  });

  // Malformed frames, sent raw: the direct path answers with a gRPC status, the one connect's
  // gRPC-Web handler gives for the same bytes.
  const getPath = "/skiff.v1alpha1.ConfigMapService/Get";
  const getBytes = toBinary(ConfigMapServiceGetRequestSchema, { $typeName: "skiff.v1alpha1.ConfigMapServiceGetRequest", namespace: "default", name: "plain" });
  // The error table (wire-errors.ts) answers each INVALID_ARGUMENT "malformed request: …", in the
  // same words both ways; here: a status, not a reset, and the same one both ways.
  const malformed: { name: string; body: Buffer }[] = [
    { name: "a truncated frame (the prefix promises more bytes than come)", body: grpcFrame(getBytes, 0, getBytes.length + 100) },
    { name: "a frame flagged compressed without grpc-encoding", body: grpcFrame(getBytes, 1) },
    { name: "half a prefix", body: Buffer.from([0, 0, 0]) },
    { name: "no message at all", body: Buffer.alloc(0) },
    { name: "two messages for a unary call", body: Buffer.concat([grpcFrame(getBytes), grpcFrame(getBytes)]) },
  ];
  it.each(malformed)("$name: a gRPC status like connect's", async ({ body }) => {
    const direct = await rawCall(url(), getPath, body);
    const viaConnect = await rawCall(url(), getPath, body, { "content-type": "application/grpc-web+proto" });
    expect(direct.rstCode).toBe(0);
    expect(direct.code).toBe(Code.InvalidArgument);
    expect(direct.message).toMatch(/^malformed request: /);
    expect(viaConnect).toMatchObject({ code: direct.code, message: direct.message });
    expect((await unary(client, "get", { namespace: "default", name: "plain" })).configMap.metadata.name).toBe("plain");
  });

  // Connect itself answers INTERNAL here ("parse binary"); the error table makes it INVALID_ARGUMENT on every path.
  it("a message that is not the request type: INVALID_ARGUMENT", async () => {
    const res = await rawCall(url(), getPath, grpcFrame(Buffer.from([0x0a, 0x7f])));
    expect(res.code).toBe(Code.InvalidArgument);
    expect(res.message).toBe("malformed request: invalid protobuf");
  });
});

describe("deadlines and cancellation", () => {
  it("the server ends a Watch at its grpc-timeout with DEADLINE_EXCEEDED (no client timer involved)", async () => {
    const res = await rawCall(url(), "/skiff.v1alpha1.ConfigMapService/Watch", grpcFrame(new Uint8Array()), { "grpc-timeout": "300m" });
    expect(res.code).toBe(Code.DeadlineExceeded);
  });

  it("the deadline ends a Watch that is still sending its initial state, not after all of it", async () => {
    // Enough objects that a slow reader takes seconds to get them all.
    const names = Array.from({ length: 300 }, (_, i) => `slow-${i}`);
    for (let i = 0; i < names.length; i += 30) {
      await Promise.all(names.slice(i, i + 30).map((name) => unary(client, "create", { configMap: { metadata: { name, namespace: "default", labels: { slow: "read" } }, data: { k: "x".repeat(4096) } } })));
    }
    const req = toBinary(ConfigMapServiceWatchRequestSchema, create(ConfigMapServiceWatchRequestSchema, { namespace: "default", labelSelector: "slow=read" }));
    const res = await rawSlowRead(url(), "/skiff.v1alpha1.ConfigMapService/Watch", grpcFrame(req), { "grpc-timeout": "300m" }, 20);
    expect(res.code).toBe(Code.DeadlineExceeded);
    expect(res.messages).toBeLessThan(names.length);
  });

  it("the server ends a unary call stuck on storage at its grpc-timeout with DEADLINE_EXCEEDED", async () => {
    api.freezeStorage();
    try {
      const getBytes = toBinary(ConfigMapServiceGetRequestSchema, { $typeName: "skiff.v1alpha1.ConfigMapServiceGetRequest", namespace: "default", name: "plain" });
      const res = await rawCall(url(), "/skiff.v1alpha1.ConfigMapService/Get", grpcFrame(getBytes), { "grpc-timeout": "300m" });
      expect(res.code).toBe(Code.DeadlineExceeded);
      const viaGrpcJs = (await statusOf(unary(client, "get", { namespace: "default", name: "plain" }, { deadline: Date.now() + 300 }))) as grpc.ServiceError;
      expect(viaGrpcJs.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    } finally {
      api.thawStorage();
    }
    expect((await unary(client, "get", { namespace: "default", name: "plain" })).configMap.metadata.name).toBe("plain");
  });

  it("a client's cancel ends the server's watch (watch count and /metrics)", async () => {
    const before = watchers();
    const w = watchCall({ namespace: "default" });
    await expect.poll(() => w.events.some((e) => e.startsWith("BOOKMARK"))).toBe(true);
    expect(watchers()).toBe(before + 1);
    w.call.cancel();
    await expect.poll(watchers).toBe(before);
    const metrics = (await getTls(`${url()}/metrics`, loadedTestPki().adminNodeOptions)).body;
    expect(metrics).toMatch(new RegExp(`skiff_apiserver_watchers\\{kind="ConfigMap"\\} ${before}\\n`));
  });
});

describe("flow control", () => {
  it("a paused reader: the server stops writing, events wait in the watch's bounded buffer, the watch is cut with RESOURCE_EXHAUSTED", async () => {
    const before = watchers();
    const w = watchCall({ namespace: "default", labelSelector: "flow=paused" });
    await expect.poll(() => w.events).toEqual(["BOOKMARK ="]);
    w.call.pause();
    // Far more than the buffer plus what HTTP/2 windows hold: were the server to write out every
    // event regardless of the reader, the watch would never be cut.
    const payload = "x".repeat(1024);
    const writes = Math.ceil((WATCH_BUFFER_BYTES * 8) / payload.length);
    for (let i = 0; i < writes; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => unary(client, "create", { configMap: { metadata: { name: `flow-${i + j}`, namespace: "default", labels: { flow: "paused" } }, data: { k: payload } } })),
      );
    }
    await expect.poll(watchers).toBe(before);
    w.call.resume();
    const status = await w.status;
    expect(status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(status.details).toMatch(/too slow/);
    expect(w.events.length).toBeGreaterThan(1);
    expect(w.events.length).toBeLessThan(writes);
  });
});

describe("GOAWAY and reconnect", () => {
  it("closing the apiserver ends open watches with a status (not a reset); the client reconnects to the new one", async () => {
    const own = configMapClient(api.target); // a connection of its own, shared with no other test's streams
    const before = watchers();
    const w = watchCall({ namespace: "default" }, {}, own);
    const viaConnect = createClient(ConfigMapService, createConnectTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: url(), httpVersion: "2" }));
    const connectEnd = (async () => {
      for await (const _ of viaConnect.watch({ namespace: "default" })) void _;
    })().then(() => undefined, (e) => ConnectError.from(e));
    await expect.poll(() => w.events.some((e) => e.startsWith("BOOKMARK"))).toBe(true);
    await expect.poll(watchers).toBe(before + 2); // (the connect one as well)
    await api.restart();
    const status = await w.status;
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    expect(status.details).toMatch(/shutting down/);
    // Over connect the watch must not end as if complete: it ends UNAVAILABLE "shutting down", or
    // (seen in about half the runs over TLS, cause not found yet: an open finding) the closing
    // connection cuts it first and the client reports the stream's premature end.
    const connectError = await connectEnd;
    expect(connectError, "a connect watch that ended as if complete").toBeDefined();
    if (connectError!.code !== Code.Unavailable) expect(connectError!.message).toMatch(/Premature close/);
    try {
      const got: any = await unary(own, "get", { namespace: "default", name: "plain" }, { deadline: Date.now() + 20_000, waitForReady: true } as grpc.CallOptions);
      expect(got.configMap.metadata.name).toBe("plain");
    } finally {
      own.close();
    }
  });
});
