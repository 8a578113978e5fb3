// Skiff's gRPC client transport (internal/client/grpc-transport.ts, also the etcd client's) against
// an independent server, @grpc/grpc-js: answers, metadata, error statuses, deadlines, cancellation,
// flow control, GOAWAY, restarts, size limits, undecodable responses and dead peers. The server
// comes from startConformanceServer (TLS with the test PKI; the transport trusts the cluster CA).
import type { DescMethodServerStreaming } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { inspect } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createGrpcTransport, type GrpcTransport, type GrpcTransportOptions } from "../../internal/client/grpc-transport.ts";
import { loadedTestPki } from "../../internal/pki/testing.ts";
import { LOOPBACK } from "../harness/ports.ts";
import { ConformanceService, startConformanceServer, type ConformanceServer } from "./conformance-server.ts";
import { startFreezableProxy } from "./freezable-proxy.ts";

// The service is built at run time from the .proto, so its client is untyped here.
type Conformance = Record<string, (req: any, opts?: any) => any>;

let server: ConformanceServer;
const transports: GrpcTransport[] = [];
function clientOf(baseUrl: string, opts: Partial<GrpcTransportOptions> = {}): Conformance {
  const t = createGrpcTransport({ baseUrl, tls: { ca: loadedTestPki().ca.cert }, ...opts });
  transports.push(t);
  return createClient(ConformanceService, t) as unknown as Conformance;
}
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e) => ConnectError.from(e));

beforeAll(async () => {
  server = await startConformanceServer();
});
afterEach(() => {
  for (const t of transports.splice(0)) t.close();
});
afterAll(() => server?.kill());

describe("unary calls", () => {
  it("carry the answer, the server's headers and trailers, and the caller's metadata", async () => {
    const client = clientOf(server.url);
    const headers: Headers[] = [];
    const trailers: Headers[] = [];
    const res = await client.echo(
      { text: "hello" },
      { headers: { "x-echo": "from the client" }, onHeader: (h: Headers) => headers.push(h), onTrailer: (t: Headers) => trailers.push(t) },
    );
    expect(res.text).toBe("hello");
    expect(server.lastMetadata?.get("x-echo")).toEqual(["from the client"]);
    expect(headers[0].get("x-echo")).toBe("from the client");
    expect(trailers[0].get("x-trailer")).toBe("done");
    // Copied from the response when first read: every way of reading them sees them.
    expect(headers[0]).toBeInstanceOf(Headers);
    expect([...headers[0]]).toContainEqual(["x-echo", "from the client"]);
    expect(new Headers(trailers[0]).get("x-trailer")).toBe("done");
    expect(inspect(trailers[0])).toContain("x-trailer");
  });

  it("report a trailers-only error with its code, its percent-decoded message and its metadata", async () => {
    const client = clientOf(server.url);
    const err = await failure(client.echo({ text: "ü 100%", failCode: Code.NotFound }));
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe("failed as asked: ü 100%");
    expect(err?.metadata.get("x-trailer")).toBe("done");
  });

  it("end with DEADLINE_EXCEEDED when the server is slower than the deadline, and the server sees the call end", async () => {
    const client = clientOf(server.url);
    const before = server.cancelled;
    const sentAt = Date.now();
    const err = await failure(client.echo({ text: "slow", delayMs: 60_000 }, { timeoutMs: 200 }));
    expect(err?.code).toBe(Code.DeadlineExceeded);
    // The server read the deadline from grpc-timeout: it is the caller's, not "none".
    expect(server.lastDeadline).toBeGreaterThan(sentAt);
    expect(server.lastDeadline).toBeLessThanOrEqual(Date.now() + 200);
    await expect.poll(() => server.cancelled).toBe(before + 1);
  });

  it("are cancelled on the server when the caller aborts", async () => {
    const client = clientOf(server.url);
    const before = server.cancelled;
    server.lastMetadata = undefined; // (set by earlier tests) aborting before the server has the call would cancel nothing there
    const ac = new AbortController();
    const call = failure(client.echo({ text: "abandoned", delayMs: 60_000 }, { signal: ac.signal }));
    await expect.poll(() => server.lastMetadata !== undefined).toBe(true);
    ac.abort();
    expect((await call)?.code).toBe(Code.Canceled);
    await expect.poll(() => server.cancelled).toBe(before + 1);
  });

  it("fail with RESOURCE_EXHAUSTED when the response is larger than readMaxBytes, and the connection stays usable", async () => {
    const client = clientOf(server.url, { readMaxBytes: 64 * 1024 });
    const err = await failure(client.echo({ text: "big", paddingBytes: 200_000 }));
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/larger than 65536/);
    expect((await client.echo({ text: "small again", paddingBytes: 1000 })).text).toBe("small again");
  });

  it.each([
    { answers: 2, what: "two response messages" },
    { answers: 0, what: "no response message" },
  ])("fail with UNIMPLEMENTED on $what and an OK status (connect's and grpc-js's code for it)", async ({ answers }) => {
    const lying = await startConformanceServer({ echoAnswers: answers });
    try {
      const err = await failure(clientOf(lying.url).echo({ text: "once" }));
      expect(err?.code).toBe(Code.Unimplemented);
    } finally {
      lying.kill();
    }
  });

  it("fail with INTERNAL when the response does not decode, and the connection stays usable", async () => {
    const client = clientOf(server.url);
    const err = await failure(client.echo({ text: "x", garbage: true }));
    expect(err?.code).toBe(Code.Internal);
    expect(err?.rawMessage).toMatch(/cannot decode/);
    expect((await client.echo({ text: "fine" })).text).toBe("fine");
  });
});

/** Waits until the Count stream has written everything, or has waited on the client for a while without progress. */
async function untilServerSettles(total: number): Promise<void> {
  for (let still = 0; still < 5 && server.stream.written < total; ) {
    const before = server.stream.written;
    await new Promise((r) => setTimeout(r, 20));
    still = server.stream.waiting && server.stream.written === before ? still + 1 : 0;
  }
}

describe("server streaming", () => {
  it("delivers every message in order and the final status", async () => {
    const client = clientOf(server.url);
    const seen: number[] = [];
    const err = await failure(
      (async () => {
        for await (const m of client.count({ count: 500, failCode: Code.Aborted })) seen.push(m.index);
      })(),
    );
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(err?.code).toBe(Code.Aborted);
    expect(err?.rawMessage).toBe("failed as asked after 500");
  });

  it("holds a fast server back while the consumer is slow (flow control), and loses nothing", async () => {
    const client = clientOf(server.url);
    const total = 20_000;
    // Messages the client may hold beyond what was consumed: its queue (256) plus what fits in
    // HTTP/2 windows and socket buffers (1 KB each). Without flow control the server runs ahead
    // by thousands.
    const slack = 1_000;
    let consumed = 0;
    let ahead = 0;
    for await (const m of client.count({ count: total, paddingBytes: 1000 })) {
      expect(m.index).toBe(++consumed);
      ahead = Math.max(ahead, server.stream.written - consumed);
      if (consumed === 1) {
        // A consumer that stalls: the server must end up waiting for it.
        await server.blocked;
        await untilServerSettles(total);
        ahead = Math.max(ahead, server.stream.written - consumed);
      } else if (consumed % 100 === 0) {
        await new Promise((r) => setImmediate(r));
      }
    }
    expect(consumed).toBe(total);
    expect(ahead).toBeLessThanOrEqual(slack);
  });

  // (connect's createClient hides the iterator's return(): its callers abort instead, tested above.)
  it("cancels the server's stream when the consumer stops reading early", async () => {
    const t = createGrpcTransport({ baseUrl: server.url, tls: { ca: loadedTestPki().ca.cert } });
    transports.push(t);
    const before = server.cancelled;
    const method = ConformanceService.method.count as DescMethodServerStreaming;
    const res = await t.stream(method, undefined, undefined, undefined, (async function* () {
      yield { count: 1_000_000, paddingBytes: 100 };
    })());
    for await (const m of res.message as AsyncIterable<any>) {
      if (m.index === 10) break;
    }
    await expect.poll(() => server.cancelled).toBe(before + 1);
  });

  it("fails with RESOURCE_EXHAUSTED on a message larger than readMaxBytes", async () => {
    const client = clientOf(server.url, { readMaxBytes: 64 * 1024 });
    const err = await failure(
      (async () => {
        for await (const _ of client.count({ count: 3, paddingBytes: 100_000 })) void _;
      })(),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
  });

  it("ends with INTERNAL at a message that does not decode, after the good ones before it", async () => {
    const client = clientOf(server.url);
    const seen: number[] = [];
    const err = await failure(
      (async () => {
        for await (const m of client.count({ count: 5, garbageAt: 3 })) seen.push(m.index);
      })(),
    );
    expect(seen).toEqual([1, 2]);
    expect(err?.code).toBe(Code.Internal);
    expect(err?.rawMessage).toMatch(/cannot decode/);
  });
});

describe("connections", () => {
  it("GOAWAY (graceful shutdown): the call in flight finishes, the next call reaches the new server", async () => {
    const first = await startConformanceServer();
    const client = clientOf(first.url);
    expect((await client.echo({ text: "warm" })).text).toBe("warm");
    first.lastMetadata = undefined;
    const inFlight = client.echo({ text: "in flight", delayMs: 300 });
    await expect.poll(() => first.lastMetadata !== undefined).toBe(true);
    const stopped = first.shutdown();
    expect((await inFlight).text).toBe("in flight");
    await stopped;
    const second = await startConformanceServer({ port: first.port });
    try {
      expect((await client.echo({ text: "after" })).text).toBe("after");
      expect(second.lastMetadata).toBeDefined();
    } finally {
      second.kill();
    }
  });

  it("GOAWAY (connections rotated by the server's max age): calls that race it are sent again, none fails", async () => {
    // An age long enough that a retried call reaches its new connection before that one ages too.
    const rotating = await startConformanceServer({ options: { "grpc.max_connection_age_ms": 150, "grpc.max_connection_age_grace_ms": 10_000 } });
    const counter = await startFreezableProxy({ host: LOOPBACK, port: rotating.port, tls: true });
    try {
      const client = clientOf(counter.url);
      // Calls back to back until the server has rotated the connection five times.
      for (let round = 0; counter.connections() < 6; round++) {
        expect(round).toBeLessThan(5_000);
        const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => client.echo({ text: `${round}.${i}` })));
        expect(answers.map((a) => a.text)).toEqual(Array.from({ length: 5 }, (_, i) => `${round}.${i}`));
      }
    } finally {
      await counter.close();
      rotating.kill();
    }
  });

  it("more calls than the server's stream limit wait for a free stream; none fails", async () => {
    const limited = await startConformanceServer({ options: { "grpc.max_concurrent_streams": 2 } });
    try {
      const client = clientOf(limited.url);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.echo({ text: `n${i}`, delayMs: 20 })));
      expect(answers.map((a) => a.text)).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
    } finally {
      limited.kill();
    }
  });

  it("server restart: open calls fail UNAVAILABLE, a server on the same port serves the next call", async () => {
    const first = await startConformanceServer();
    const client = clientOf(first.url);
    const seen: number[] = [];
    const ended = failure(
      (async () => {
        for await (const m of client.count({ count: 10, hangAfter: 1 })) {
          seen.push(m.index);
          first.kill();
        }
      })(),
    );
    expect((await ended)?.code).toBe(Code.Unavailable);
    expect(seen).toEqual([1]);
    expect((await failure(client.echo({ text: "nobody there" })))?.code).toBe(Code.Unavailable);
    const second = await startConformanceServer({ port: first.port });
    try {
      expect((await client.echo({ text: "back" })).text).toBe("back");
    } finally {
      second.kill();
    }
  });

  it("keepalive pings find a peer that stopped answering: the open call fails UNAVAILABLE, the next one reconnects", async () => {
    const proxy = await startFreezableProxy({ host: LOOPBACK, port: server.port, tls: true });
    try {
      const client = clientOf(proxy.url, { pingIntervalMs: 100, pingTimeoutMs: 300 });
      const ended = failure(
        (async () => {
          for await (const _ of client.count({ count: 10, hangAfter: 1 })) proxy.freeze();
        })(),
      );
      const err = await ended;
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toMatch(/keepalive/);
      expect((await client.echo({ text: "through a new connection" })).text).toBe("through a new connection");
      expect(proxy.connections()).toBe(2);
    } finally {
      await proxy.close();
    }
  });
});
