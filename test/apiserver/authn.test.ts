// Who may call, on every path into the apiserver: Connect, plain gRPC (the direct path), gRPC-Web
// and Connect-JSON over HTTP/1.1, each with no credentials, a certificate from another CA, an
// expired certificate, an unknown token, a valid certificate and a valid static token — unary
// and streaming. Then impersonation and denials, through an authorizer that tells users apart.
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapService } from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { SecretService } from "../../gen/skiff/v1alpha1/secret_service_pb.js";
import { createStaticTokenAuthenticator } from "../../internal/auth/authn/token-file.ts";
import type { Authorizer, RequestAttributes } from "../../internal/auth/types.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { foreignCa } from "../harness/pki.ts";

const TOKEN = "static-token-for-ci";
const seen: RequestAttributes[] = [];
// Admins may do anything, including impersonating; jane may not touch secrets; everyone else may do the rest.
const authorizer: Authorizer = {
  authorize(a) {
    seen.push(a);
    if (a.user.groups.includes("system:masters")) return { decision: "allow", reason: "" };
    if (a.verb === "impersonate") return { decision: "deny", reason: "only admins impersonate" };
    if (a.resource === "secrets") return { decision: "deny", reason: "" };
    return { decision: "allow", reason: "" };
  },
};

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane({
    authorizer,
    tokenAuthenticators: [createStaticTokenAuthenticator(new Map([[TOKEN, { name: "ci-bot", uid: "42", groups: ["ci"] }]]))],
  });
});
afterAll(async () => {
  await cp?.stop();
});

interface Credential {
  cert?: string;
  key?: string;
  token?: string;
}

type Protocol = (baseUrl: string, nodeOptions: { ca: string; cert?: string; key?: string }, interceptors: Interceptor[]) => Transport;
const protocols: Record<string, Protocol> = {
  "Connect": (baseUrl, nodeOptions, interceptors) => createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions, interceptors }),
  "gRPC (direct path)": (baseUrl, nodeOptions, interceptors) => createGrpcTransport({ baseUrl, nodeOptions, interceptors }),
  "gRPC-Web": (baseUrl, nodeOptions, interceptors) => createGrpcWebTransport({ baseUrl, httpVersion: "2", nodeOptions, interceptors }),
  "Connect-JSON over HTTP/1.1": (baseUrl, nodeOptions, interceptors) =>
    createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, nodeOptions, interceptors }),
};

function transport(protocol: Protocol, c: Credential): Transport {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${c.token}`);
    return next(req);
  };
  return protocol(cp.server.url, { ca: cp.pki.ca.cert, cert: c.cert, key: c.key }, c.token ? [bearer] : []);
}

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** The first event of a watch, or its error code. */
async function watchCode(t: Transport): Promise<Code | "ok"> {
  const ac = new AbortController();
  try {
    for await (const _ of createClient(ConfigMapService, t).watch({ namespace: "default" }, { signal: ac.signal })) break;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    ac.abort();
  }
}

const credentials: Record<string, () => Promise<{ c: Credential; want: Code | "ok"; message?: RegExp }>> = {
  "no credentials": async () => ({ c: {}, want: Code.Unauthenticated, message: /^no credentials: / }),
  "a certificate from another CA": async () => ({ c: await (await foreignCa()).client("admin"), want: Code.Unauthenticated, message: /not signed by the cluster CA/ }),
  "an expired certificate": async () => {
    const day = 86_400_000;
    const pair = await cp.pki.issueClient("admin", ["system:masters"], { notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) });
    return { c: pair, want: Code.Unauthenticated, message: /expired/ };
  },
  "an unknown token": async () => ({ c: { token: "not-a-token" }, want: Code.Unauthenticated, message: /bearer token rejected/ }),
  "a valid certificate": async () => ({ c: { cert: cp.pki.admin.cert, key: cp.pki.admin.key }, want: "ok" }),
  "a valid static token": async () => ({ c: { token: TOKEN }, want: "ok" }),
};

describe.each(Object.entries(protocols))("%s", (_name, protocol) => {
  it.each(Object.keys(credentials))("with %s: unary and streaming calls get the same answer", async (what) => {
    const { c, want, message } = await credentials[what]();
    const t = transport(protocol, c);
    const cms = createClient(ConfigMapService, t);
    expect(await codeOf(cms.list({ namespace: "default" }))).toBe(want);
    expect(await codeOf(cms.get({ namespace: "default", name: "nothing-here" }))).toBe(want === "ok" ? Code.NotFound : want);
    expect(await watchCode(t)).toBe(want);
    if (message) {
      const err = await cms.list({ namespace: "default" }).catch((e) => ConnectError.from(e));
      expect((err as ConnectError).rawMessage).toMatch(message);
    }
  });

  it("refuses what the authorizer denies with PERMISSION_DENIED in Kubernetes' words", async () => {
    const jane = await cp.pki.issueClient("jane", ["devs"]);
    const secrets = createClient(SecretService, transport(protocol, jane));
    const err = await secrets.list({ namespace: "team-a" }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe('secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team-a"');
    expect(await codeOf(createClient(ConfigMapService, transport(protocol, jane)).list({ namespace: "team-a" }))).toBe("ok");
  });
});

describe("what the authorizer is asked", () => {
  it("names the user, groups, verb, resource, subresource, namespace and name of each call", async () => {
    const client = createClient(ConfigMapService, createApiTransport(cp.server.url, { ca: cp.pki.ca.cert, token: TOKEN }));
    seen.length = 0;
    await client.get({ namespace: "default", name: "nothing-here" }).catch(() => undefined);
    expect(seen).toEqual([
      {
        user: { name: "ci-bot", uid: "42", groups: ["ci", "system:authenticated"], authenticatedBy: "token-file" },
        verb: "get",
        apiGroup: "",
        resource: "configmaps",
        subresource: "",
        namespace: "default",
        name: "nothing-here",
      },
    ]);
  });
});

describe("impersonation (--as, --as-group)", () => {
  it("lets an admin act as another user, whose identity the authorizer then sees", async () => {
    const asJane = createApiTransport(cp.server.url, { ...cp.pki.adminCredentials, impersonateUser: "jane", impersonateGroups: ["devs"] });
    seen.length = 0;
    const err = await createClient(SecretService, asJane).list({ namespace: "team-a" }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe('secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team-a"');
    expect(seen.map((a) => [a.user.name, a.verb, a.resource, a.name])).toEqual([
      ["admin", "impersonate", "users", "jane"],
      ["admin", "impersonate", "groups", "devs"],
      ["jane", "list", "secrets", ""],
    ]);
    expect(seen[2].user.groups).toEqual(["devs", "system:authenticated"]);
  });

  it("refuses a user who may not impersonate", async () => {
    const bob = await cp.pki.issueClient("bob", ["devs"]);
    const t = createApiTransport(cp.server.url, { ca: cp.pki.ca.cert, ...bob, impersonateUser: "admin", impersonateGroups: ["system:masters"] });
    const err = await createClient(ConfigMapService, t).list({ namespace: "default" }).catch((e) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toBe('user "bob" cannot impersonate user "admin": only admins impersonate');
  });
});
