// What a hostile or careless client sends, on a real etcd, over every protocol: malformed and
// oversized requests get the same code everywhere, in Skiff's words (no dependency's text), and
// the server keeps serving; Kubernetes' rules for immutable ConfigMaps and Secrets, long names,
// resource versions (opaque strings; from the future) and the default namespace.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigMapService,
  ConfigMapServiceCreateRequestSchema as CreateConfigMapRequestSchema,
  ConfigMapServiceWatchRequestSchema as WatchConfigMapsRequestSchema,
} from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { EventService } from "../../gen/skiff/v1alpha1/event_service_pb.js";
import { SecretService } from "../../gen/skiff/v1alpha1/secret_service_pb.js";
import { startApiServer } from "../../internal/apiserver/server.ts";
import { createGrpcTransport as createSkiffTransport } from "../../internal/client/grpc-transport.ts";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { envelope, rawCall, type Protocol } from "./raw-call.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
}, 60_000);
afterAll(async () => {
  await cp?.stop();
});

const MiB = 1024 * 1024;
const CREATE = "/skiff.v1alpha1.ConfigMapService/Create";
const WATCH = "/skiff.v1alpha1.ConfigMapService/Watch";
const createBytes = (data: Record<string, string>, name = "raw") => toBinary(CreateConfigMapRequestSchema, create(CreateConfigMapRequestSchema, { configMap: configMap(name, data) }));
const json = (s: string) => Buffer.from(s);
// Texts of the libraries underneath that must never reach a client.
const LEAKS = /parse binary|etcdserver|grpc: |premature EOF|cannot decode message skiff|SyntaxError|\n\s+at /;

interface Malformed {
  /** The wire bytes for a protocol: enveloped for gRPC and gRPC-Web, bare for Connect unary. */
  wire(p: Protocol): Uint8Array;
  path: string;
  json?: boolean;
  streaming?: boolean;
  code: Code;
  says: RegExp;
}

const framed = (p: Protocol, payload: Uint8Array) => (p === "Connect" ? payload : envelope(payload));
const cases: Record<string, Malformed> = {
  "invalid protobuf": { wire: (p) => framed(p, Buffer.from([0x0f, 0x00])), path: CREATE, code: Code.InvalidArgument, says: /malformed request: invalid protobuf/ },
  "invalid JSON": { wire: (p) => framed(p, json('{"configMap": {')), path: CREATE, json: true, code: Code.InvalidArgument, says: /malformed request: invalid JSON/ },
  "unknown JSON field": {
    wire: (p) => framed(p, json('{"configMap": {"metadata": {"name": "typo", "lables": {"a": "b"}}}}')),
    path: CREATE,
    json: true,
    code: Code.InvalidArgument,
    says: /"lables" is unknown/,
  },
  // A frame that declares 100 bytes and brings 10: Watch, so Connect too speaks in frames.
  "truncated frame": {
    wire: () => envelope(toBinary(WatchConfigMapsRequestSchema, create(WatchConfigMapsRequestSchema, { namespace: "default-namespace" })).subarray(0, 10), 100),
    path: WATCH,
    streaming: true,
    code: Code.InvalidArgument,
    says: /malformed request: .*truncated/,
  },
  "oversized frame (4 MiB)": { wire: (p) => framed(p, createBytes({ big: "x".repeat(4 * MiB) })), path: CREATE, code: Code.ResourceExhausted, says: /request message larger than 3145728 bytes/ },
};

describe("malformed input gets the same code on every protocol", () => {
  const protocols: Protocol[] = ["gRPC", "Connect", "gRPC-Web"];
  describe.each(Object.entries(cases))("%s", (_name, c) => {
    it.each(protocols)("over %s", async (protocol) => {
      const status = await rawCall(cp.server.url, protocol, c.path, c.wire(protocol), { json: c.json, streaming: c.streaming });
      expect({ code: Code[status.code], message: status.message }).toMatchObject({ code: Code[c.code], message: expect.stringMatching(c.says) });
      expect(status.message).not.toMatch(LEAKS);
    });
  });

  it("and the server keeps serving", async () => {
    const client = createClient(ConfigMapService, createSkiffTransport({ baseUrl: cp.server.url, tls: cp.pki.adminNodeOptions }));
    expect((await client.create({ configMap: configMap("after-malformed") })).configMap?.metadata?.name).toBe("after-malformed");
  });
});

const transports: Record<string, () => Transport> = {
  "gRPC (Skiff's transport)": () => createSkiffTransport({ baseUrl: cp.server.url, tls: cp.pki.adminNodeOptions }),
  "gRPC (connect-node)": () => createGrpcTransport({ baseUrl: cp.server.url, nodeOptions: cp.pki.adminNodeOptions }),
  Connect: () => createConnectTransport({ baseUrl: cp.server.url, nodeOptions: cp.pki.adminNodeOptions, httpVersion: "2" }),
  "gRPC-Web": () => createGrpcWebTransport({ baseUrl: cp.server.url, nodeOptions: cp.pki.adminNodeOptions, httpVersion: "2" }),
};

describe.each(Object.entries(transports))("limits over %s", (name, make) => {
  let client: Client<typeof ConfigMapService>;
  let events: Client<typeof EventService>;
  const prefix = name.toLowerCase().replace(/[^a-z]+/g, "-").replace(/-$/, "");
  beforeAll(() => {
    const transport = make();
    client = createClient(ConfigMapService, transport);
    events = createClient(EventService, transport);
  });
  const code = (p: Promise<unknown>) => p.then(() => "OK", (e) => Code[ConnectError.from(e).code]);

  it("a 10 MB write is refused with RESOURCE_EXHAUSTED, and the next small write succeeds", async () => {
    const err = await client.create({ configMap: configMap(`${prefix}-huge`, { big: "x".repeat(10_000_000) }) }).catch((e) => ConnectError.from(e));
    expect(Code[(err as ConnectError).code]).toBe("ResourceExhausted");
    expect((err as ConnectError).rawMessage).not.toMatch(LEAKS);
    const small = await client.create({ configMap: configMap(`${prefix}-small`, { k: "v" }) }, { timeoutMs: 5000 });
    expect(small.configMap?.metadata?.resourceVersion).not.toBe("");
  });

  it("an object over 1.5 MiB is RESOURCE_EXHAUSTED, ConfigMap data over 1 MiB INVALID_ARGUMENT", async () => {
    // An Event's message has no limit of its own: only the object size stops it.
    const fat = await events.create({ event: { metadata: { name: `${prefix}-fat`, namespace: "default" }, message: "x".repeat(2 * MiB) } }).catch((e) => ConnectError.from(e));
    expect(Code[(fat as ConnectError).code]).toBe("ResourceExhausted");
    expect((fat as ConnectError).rawMessage).toMatch(/too large: \d+ bytes encoded, at most 1572864/);
    const data = await client.create({ configMap: configMap(`${prefix}-data`, { a: "x".repeat(MiB) }) }).catch((e) => ConnectError.from(e));
    expect(Code[(data as ConnectError).code]).toBe("InvalidArgument");
    expect((data as ConnectError).rawMessage).toMatch(/data: too long: \d+ bytes, at most 1048576/);
    expect(await code(client.create({ configMap: configMap(`${prefix}-fits`, { a: "x".repeat(MiB - 10) }) }))).toBe("OK");
  });

  it("an 8,000-character name is NOT_FOUND with a short message", async () => {
    const err = await client.get({ namespace: "default", name: "n".repeat(8000) }).catch((e) => ConnectError.from(e));
    expect(Code[(err as ConnectError).code]).toBe("NotFound");
    expect((err as ConnectError).rawMessage).toMatch(/^configmap "n{64}…\(8000 characters\)" not found$/);
  });
});

describe("Kubernetes' rules", () => {
  let cms: Client<typeof ConfigMapService>;
  let secrets: Client<typeof SecretService>;
  beforeAll(() => {
    cms = createClient(ConfigMapService, createSkiffTransport({ baseUrl: cp.server.url, tls: cp.pki.adminNodeOptions }));
    secrets = createClient(SecretService, createSkiffTransport({ baseUrl: cp.server.url, tls: cp.pki.adminNodeOptions }));
  });
  const fails = (p: Promise<unknown>) => p.then(() => { throw new Error("expected the call to fail"); }, (e) => ConnectError.from(e));

  it("an immutable ConfigMap's data cannot change, nor can it be made mutable; its labels can", async () => {
    const cm = (await cms.create({ configMap: { ...configMap("frozen", { k: "v" }), immutable: true } })).configMap!;
    const changed = await fails(cms.update({ configMap: { ...cm, data: { k: "other" } } }));
    expect([Code[changed.code], changed.rawMessage]).toEqual(["InvalidArgument", expect.stringContaining("data: field is immutable when `immutable` is set")]);
    const unfrozen = await fails(cms.update({ configMap: { ...cm, immutable: false } }));
    expect([Code[unfrozen.code], unfrozen.rawMessage]).toEqual(["InvalidArgument", expect.stringContaining("immutable: field is immutable when `immutable` is set")]);
    const relabelled = (await cms.update({ configMap: { ...cm, metadata: { ...cm.metadata!, labels: { tier: "x" } } } })).configMap!;
    expect(relabelled.metadata?.labels).toEqual({ tier: "x" });
    expect((await cms.get({ namespace: "default", name: "frozen" })).configMap?.data).toEqual({ k: "v" });
  });

  it("an immutable Secret's data cannot change", async () => {
    const s = (await secrets.create({ secret: { metadata: { name: "frozen", namespace: "default" }, data: { pw: Buffer.from("a") }, immutable: true } })).secret!;
    const changed = await fails(secrets.update({ secret: { ...s, data: { pw: Buffer.from("b") } } }));
    expect([Code[changed.code], changed.rawMessage]).toEqual(["InvalidArgument", expect.stringContaining("data: field is immutable")]);
  });

  it("resource versions are opaque: \"0\" + version is not that version; a malformed one is INVALID_ARGUMENT", async () => {
    const cm = (await cms.create({ configMap: configMap("opaque", { k: "v" }) })).configMap!;
    const rv = cm.metadata!.resourceVersion;
    const padded = await fails(cms.update({ configMap: { ...cm, metadata: { ...cm.metadata!, resourceVersion: `00${rv}` }, data: { k: "w" } } }));
    expect(Code[padded.code]).toBe("Aborted");
    const delPadded = await fails(cms.delete({ namespace: "default", name: "opaque", options: { resourceVersion: `0${rv}` } }));
    expect(Code[delPadded.code]).toBe("Aborted");
    const delBad = await fails(cms.delete({ namespace: "default", name: "opaque", options: { resourceVersion: "abc" } }));
    expect([Code[delBad.code], delBad.rawMessage]).toEqual(["InvalidArgument", expect.stringContaining("options.resourceVersion")]);
    expect((await cms.delete({ namespace: "default", name: "opaque", options: { resourceVersion: rv } })).deleted).toBe(true);
  });

  it("Get with namespace \"\" reads the default namespace, like the other verbs", async () => {
    await cms.create({ configMap: configMap("in-default") });
    expect((await cms.get({ namespace: "", name: "in-default" })).configMap?.metadata?.namespace).toBe("default");
  });

  it("a watch from a resource version storage has not reached is refused: OUT_OF_RANGE \"too large resource version\"", async () => {
    const current = Number((await cms.list({ namespace: "default" })).resourceVersion);
    for (const rv of [String(current + 5), "99999999999999999999"]) {
      const err = await fails(
        (async () => {
          for await (const ev of cms.watch({ namespace: "default", resourceVersion: rv })) throw new Error(`got an event: ${JSON.stringify(ev.configMap?.metadata)}`);
        })(),
      );
      expect([Code[err.code], err.rawMessage]).toEqual(["OutOfRange", expect.stringMatching(/^too large resource version: \d+, current: \d+/)]);
    }
    // A version storage has reached, even if no ConfigMap carries it, is fine.
    const ac = new AbortController();
    for await (const ev of cms.watch({ namespace: "default", resourceVersion: String(current) }, { signal: ac.signal })) {
      expect(Number(ev.configMap?.metadata?.resourceVersion)).toBeGreaterThanOrEqual(current);
      break;
    }
    ac.abort();
  });
});

describe("watches per connection", () => {
  it("a connection may hold --max-watches-per-connection watches; more are RESOURCE_EXHAUSTED, another connection may", async () => {
    const server = await startApiServer({ store: cp.store, tls: cp.pki.serving, port: 0, maxWatchesPerConnection: 3, initialNamespaces: [] });
    const ac = new AbortController();
    try {
      // Opens a watch and takes its first event (it stays open until the end of the test).
      const open = (client: Client<typeof ConfigMapService>) =>
        client.watch({ namespace: "default" }, { signal: ac.signal })[Symbol.asyncIterator]().next().then(() => "open", (e) => Code[ConnectError.from(e).code]);
      const one = createClient(ConfigMapService, createSkiffTransport({ baseUrl: server.url, tls: cp.pki.adminNodeOptions }));
      expect(await Promise.all([open(one), open(one), open(one)])).toEqual(["open", "open", "open"]);
      expect(await open(one)).toBe("ResourceExhausted");
      expect((await one.list({ namespace: "default" })).resourceVersion).not.toBe(""); // other calls still go
      const other = createClient(ConfigMapService, createSkiffTransport({ baseUrl: server.url, tls: cp.pki.adminNodeOptions }));
      expect(await open(other)).toBe("open");
    } finally {
      ac.abort();
      await server.close();
    }
  });
});
