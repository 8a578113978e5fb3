// The failover transport over in-memory servers (connect's router transport) wrapped so a test can
// make one "down": connection refused (the call never reached it: sent on to the next) or the
// connection lost under a call (it may have reached it: the caller sees UNAVAILABLE, and its next
// call goes to the next server).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Transport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NamespaceService } from "../../gen/skiff/v1alpha1/namespace_service_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
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
});
