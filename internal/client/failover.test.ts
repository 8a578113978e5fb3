// The failover transport over in-memory servers (connect's router transport) wrapped so a test can
// make one "down": connection refused (the call never reached it: sent on to the next) or the
// connection lost under a call (it may have reached it: the caller sees UNAVAILABLE, and its next
// call goes to the next server).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NamespaceService } from "../../gen/skiff/v1alpha1/namespace_service_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { EndpointsSchema } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { EndpointsService } from "../../gen/skiff/v1alpha1/endpoints_service_pb.js";
import { createFailoverTransport, neverReached } from "./failover.ts";

type Down = "refused" | "lost" | undefined;

function server(name: string, state: { down: Down; calls: number }): Transport {
  const inner = createRouterTransport(({ service }) => {
    service(NamespaceService, {
      get: () => ({ namespace: create(NamespaceSchema, { metadata: { name } }) }),
      async *watch() {
        yield { type: 1, namespace: create(NamespaceSchema, { metadata: { name } }) };
      },
    } as never);
  });
  const fail = () => {
    state.calls++;
    if (state.down === "refused") throw new ConnectError("connect ECONNREFUSED", Code.Unavailable, undefined, undefined, Object.assign(new Error("refused"), { code: "ECONNREFUSED" }));
    if (state.down === "lost") throw new ConnectError(`lost the connection to ${name}`, Code.Unavailable);
  };
  return {
    async unary(...args) {
      fail();
      return inner.unary(...args);
    },
    async stream(...args) {
      fail();
      return inner.stream(...args);
    },
  };
}

function cluster() {
  const a = { down: undefined as Down, calls: 0 };
  const b = { down: undefined as Down, calls: 0 };
  const moves: string[] = [];
  const t = createFailoverTransport({
    servers: ["https://a:6443", "https://b:6443"],
    connect: (url) => server(new URL(url).hostname, url.includes("//a") ? a : b),
    discover: false,
    onMove: (from, to) => moves.push(`${from} → ${to}`),
  });
  return { a, b, moves, t, ns: createClient(NamespaceService, t) };
}

describe("failover transport", () => {
  it("sends a call that never reached a server on to the next, and stays there", async () => {
    const c = cluster();
    expect((await c.ns.get({ name: "x" })).namespace?.metadata?.name).toBe("a");
    c.a.down = "refused";
    expect((await c.ns.get({ name: "x" })).namespace?.metadata?.name).toBe("b");
    expect(c.moves).toEqual(["https://a:6443 → https://b:6443"]);
    const before = c.a.calls;
    c.a.down = undefined;
    expect((await c.ns.get({ name: "x" })).namespace?.metadata?.name).toBe("b");
    expect(c.a.calls).toBe(before);
  });

  it("fails a call whose connection was lost (it may have been applied) and sends the next one elsewhere", async () => {
    const c = cluster();
    c.a.down = "lost";
    await expect(c.ns.get({ name: "x" })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(c.b.calls).toBe(0);
    expect((await c.ns.get({ name: "x" })).namespace?.metadata?.name).toBe("b");
  });

  it("moves a stream that cannot start, and fails with the last error when every server is down", async () => {
    const c = cluster();
    c.a.down = "refused";
    const names: string[] = [];
    for await (const ev of c.ns.watch({})) names.push(ev.namespace!.metadata!.name);
    expect(names).toEqual(["b"]);
    c.b.down = "refused";
    await expect(c.ns.get({ name: "x" })).rejects.toSatisfy(neverReached);
  });

  it("learns the servers the kubernetes Endpoints list, tells them, and sends calls on to a learned one", async () => {
    const listed = create(EndpointsSchema, {
      metadata: { name: "kubernetes", namespace: "default" },
      subsets: [{ addresses: [{ ip: "10.0.0.1" }, { ip: "10.0.0.2" }], ports: [{ name: "https", port: 6443 }] }],
    });
    const state = new Map([["10.0.0.1", { down: undefined as Down, calls: 0 }], ["10.0.0.2", { down: undefined as Down, calls: 0 }]]);
    const connect = (url: string): Transport => {
      const host = new URL(url).hostname;
      const inner = createRouterTransport(({ service }) => {
        service(EndpointsService, { get: () => ({ endpoints: listed }) } as never);
        service(NamespaceService, { get: () => ({ namespace: create(NamespaceSchema, { metadata: { name: host } }) }) } as never);
      });
      const fail = () => {
        const s = state.get(host)!;
        s.calls++;
        if (s.down) throw new ConnectError("connect ECONNREFUSED", Code.Unavailable, undefined, undefined, Object.assign(new Error("refused"), { code: "ECONNREFUSED" }));
      };
      return {
        async unary(...args) {
          fail();
          return inner.unary(...args);
        },
        stream: (...args) => inner.stream(...args),
      };
    };
    const told: string[][] = [];
    const t = createFailoverTransport({ servers: ["https://10.0.0.1:6443"], connect, onDiscovered: (s) => told.push(s) });
    await t.discover();
    expect(told.at(-1)).toEqual(["https://10.0.0.1:6443", "https://10.0.0.2:6443"]);
    expect(t.servers()).toEqual(["https://10.0.0.1:6443", "https://10.0.0.2:6443"]);
    state.get("10.0.0.1")!.down = "refused";
    expect((await createClient(NamespaceService, t).get({ name: "x" })).namespace?.metadata?.name).toBe("10.0.0.2");
    t.close();
  });
});
