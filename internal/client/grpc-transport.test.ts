// The transport and the typed client against a bare HTTP/2 gRPC peer written here (h2c on
// loopback), for what the leaner call path must keep: the idle connection is closed only when no
// call is open, the connection's receive window is opened wide while each stream keeps its own,
// and a watch the caller stops reading (or aborts) is cancelled on the server.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import http2, { type Http2Session, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WatchEventType } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { createFailoverTransport } from "./failover.ts";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.ts";
import { createResourceClient } from "./resource-client.ts";

const pod = (name: string): Pod => create(PodSchema, { metadata: { name, namespace: "default", resourceVersion: "7" }, spec: { nodeName: "node-1" } });
const framed = (bytes: Uint8Array) => {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
};
const answer = framed(toBinary(PodService.method.get.output, create(PodService.method.get.output, { pod: pod("web") })));
const event = (i: number) => framed(toBinary(PodService.method.watch.output, create(PodService.method.watch.output, { type: WatchEventType.MODIFIED, pod: pod(`web-${i}`) })));

interface Peer {
  url: string;
  sessions: Http2Session[];
  closedSessions: number;
  /** Watch streams the client reset (cancelled) before they ended. */
  cancelledWatches: number;
  /** Unary calls wait this long before answering. */
  delayMs: number;
  /** Unary calls answer with this gRPC status (trailers only) instead of a pod. */
  failWith?: { code: Code; message: string };
  close(): Promise<void>;
}

async function startPeer(): Promise<Peer> {
  const server = http2.createServer();
  const peer: Peer = { url: "", sessions: [], closedSessions: 0, cancelledWatches: 0, delayMs: 0, close: () => new Promise((r) => server.close(() => r())) };
  server.on("session", (s) => {
    peer.sessions.push(s);
    s.on("close", () => peer.closedSessions++);
  });
  server.on("stream", (st: ServerHttp2Stream, headers) => {
    st.on("error", () => {});
    st.resume();
    if (String(headers[":path"]).endsWith("/Watch")) return watch(st);
    if (peer.failWith) {
      st.respond({ ":status": 200, "content-type": "application/grpc+proto", "grpc-status": String(peer.failWith.code), "grpc-message": encodeURIComponent(peer.failWith.message) }, { endStream: true });
      return;
    }
    const reply = () => {
      if (st.closed) return;
      st.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      st.on("wantTrailers", () => st.sendTrailers({ "grpc-status": "0" }));
      st.end(answer);
    };
    if (peer.delayMs > 0) setTimeout(reply, peer.delayMs);
    else reply();
  });
  // An endless watch: an event every few ms until the client goes away.
  function watch(st: ServerHttp2Stream) {
    st.respond({ ":status": 200, "content-type": "application/grpc+proto" });
    let i = 0;
    const timer = setInterval(() => st.write(event(i++)), 5);
    st.on("close", () => {
      clearInterval(timer);
      if (st.rstCode === http2.constants.NGHTTP2_CANCEL) peer.cancelledWatches++;
    });
  }
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  peer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return peer;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
async function setup(opts: { idleConnectionTimeoutMs?: number } = {}) {
  const peer = await startPeer();
  const transport: GrpcTransport = createGrpcTransport({ baseUrl: peer.url, ...opts });
  cleanups.push(() => peer.close(), () => transport.close());
  return { peer, transport, pods: createResourceClient<Pod>(transport, "Pod") };
}

describe("the idle connection", () => {
  it("is kept while calls follow each other and while a call outlasts the idle timeout, and closed once idle that long", async () => {
    const { peer, pods } = await setup({ idleConnectionTimeoutMs: 200 });
    for (let i = 0; i < 20; i++) expect((await pods.get("default", "web")).metadata?.name).toBe("web");
    // A call that takes longer than the idle timeout, right after one ended: the timer armed by
    // the first one must not close the connection under it.
    peer.delayMs = 800;
    expect((await pods.get("default", "web")).metadata?.name).toBe("web");
    expect(peer.sessions).toHaveLength(1);
    expect(peer.closedSessions).toBe(0);
    await expect.poll(() => peer.closedSessions, { timeout: 10_000 }).toBe(1);
    // The next call opens a new connection.
    peer.delayMs = 0;
    expect((await pods.get("default", "web")).metadata?.name).toBe("web");
    expect(peer.sessions).toHaveLength(2);
  });
});

describe("flow control windows", () => {
  it("open the connection's receive window to 8 MiB and leave each stream's at the 64 KiB default", async () => {
    const { peer, pods } = await setup();
    await pods.get("default", "web");
    // What the server may send before it must wait: the client's windows as the server sees them.
    await expect.poll(() => peer.sessions[0].state.remoteWindowSize, { timeout: 10_000 }).toBeGreaterThanOrEqual(8 * 1024 * 1024 - 65_535);
    expect(peer.sessions[0].remoteSettings.initialWindowSize).toBe(65_535);
  });
});

describe("the typed client's calls, straight on the transport", () => {
  it("end a watch on the server when the caller stops reading, and deliver the events in order", async () => {
    const { peer, pods } = await setup();
    const names: string[] = [];
    for await (const ev of pods.watch("default")) {
      expect(ev.type).toBe("MODIFIED");
      names.push(ev.object.metadata!.name);
      if (names.length === 5) break;
    }
    expect(names).toEqual(["web-0", "web-1", "web-2", "web-3", "web-4"]);
    await expect.poll(() => peer.cancelledWatches, { timeout: 10_000 }).toBe(1);
  });

  it("end a watch on the server when the caller stops reading, through the failover transport too", async () => {
    const peer = await startPeer();
    const failover = createFailoverTransport({ servers: [peer.url], connect: (url) => createGrpcTransport({ baseUrl: url }), discover: false });
    cleanups.push(() => peer.close(), () => failover.close());
    let seen = 0;
    for await (const ev of createResourceClient<Pod>(failover, "Pod").watch("default")) {
      expect(ev.object.metadata?.name).toBe(`web-${seen++}`);
      if (seen === 3) break;
    }
    await expect.poll(() => peer.cancelledWatches, { timeout: 10_000 }).toBe(1);
  });

  it("end a watch on the server when the caller's signal aborts, and fail the caller with CANCELED", async () => {
    const { peer, pods } = await setup();
    const ac = new AbortController();
    let seen = 0;
    const err = await (async () => {
      for await (const ev of pods.watch("default", { signal: ac.signal })) {
        expect(ev.object.metadata?.name).toBe(`web-${seen++}`);
        if (seen === 3) ac.abort();
      }
    })().then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Canceled);
    await expect.poll(() => peer.cancelledWatches, { timeout: 10_000 }).toBe(1);
  });

  it("fail a unary call with the server's code and message", async () => {
    const { peer, pods } = await setup();
    peer.failWith = { code: Code.NotFound, message: 'pods "web" not found' };
    const err = await pods.get("default", "web").then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe('pods "web" not found');
  });

  it("refuse a request larger than writeMaxBytes with RESOURCE_EXHAUSTED before sending it", async () => {
    const peer = await startPeer();
    const transport = createGrpcTransport({ baseUrl: peer.url, writeMaxBytes: 1024 });
    cleanups.push(() => peer.close(), () => transport.close());
    const big = pod("big");
    big.metadata!.annotations = { note: "x".repeat(4096) };
    const err = await createResourceClient<Pod>(transport, "Pod").updateStatus(big).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(peer.sessions).toHaveLength(0);
  });
});
