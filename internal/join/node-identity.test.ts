// NodeIdentityService through a real in-process apiserver (memory store, TLS, the whole request
// pipeline): what a bootstrapper may and may not do, and what the signer refuses.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { NodeIdentityService } from "../../gen/skiff/v1alpha1/node_identity_service_pb.js";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { createCsr } from "../pki/csr.ts";
import { testPki, type TestPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { nodeCsrs } from "./agent-join.ts";
import { bearerOf, TOKEN_NAMESPACE, tokenSecret } from "./token.ts";

let pki: TestPki;
let api: ApiServer;
const agentToken = { id: "agent1", secret: "0123456789abcdef" };

beforeAll(async () => {
  pki = await testPki();
  api = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, heartbeatMs: 200, nodeSigner: { ca: pki.ca } });
  await api.ops.get("Namespace")!.create(create(NamespaceSchema, { metadata: { name: TOKEN_NAMESPACE } }));
  const stored = await api.ops.get("Secret")!.create(tokenSecret({ ...agentToken, role: "agent", description: "" }));
  while (api.caches.get("Secret")!.revision() < Number(stored.metadata!.resourceVersion)) await new Promise((r) => setTimeout(r, 5));
});

afterAll(async () => {
  await api?.close();
});

const asBootstrapper = () => createApiTransport(api.url, { ca: pki.ca.cert, token: bearerOf(agentToken) });
const codeOf = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => new Error("expected a refusal"), (e: unknown) => e)).code;
const messageOf = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => new Error("expected a refusal"), (e: unknown) => e)).rawMessage;

describe("NodeIdentityService", () => {
  it("a bootstrapper may join, and nothing else: no reads, no renewals", async () => {
    const t = asBootstrapper();
    expect(await codeOf(createResourceClient(t, "Pod").list("default"))).toBe(Code.PermissionDenied);
    expect(await codeOf(createResourceClient(t, "Secret").list(TOKEN_NAMESPACE))).toBe(Code.PermissionDenied);
    const { requests } = await nodeCsrs("n1", ["n1", "10.0.0.1"]);
    expect(await codeOf(createClient(NodeIdentityService, t).renewNodeCertificates({ requests }))).toBe(Code.PermissionDenied);
    const res = await createClient(NodeIdentityService, t).joinNode({ nodeName: "n1", nodeSecret: "s".repeat(20), requests });
    const cert = new X509Certificate(res.certificates!.clientCertificate);
    expect(cert.subject.split("\n")).toEqual(["O=system:nodes", "CN=system:node:n1"]);
    expect(new X509Certificate(res.certificates!.servingCertificate).subjectAltName).toBe("DNS:n1, IP Address:10.0.0.1");
  });

  it("refuses a CSR for another identity or with names the node may not hold, and leaves no Node", async () => {
    const client = createClient(NodeIdentityService, asBootstrapper());
    const good = await nodeCsrs("n2", ["n2"]);
    const admin = await createCsr({ commonName: "admin", organizations: ["system:masters"], sans: [] });
    const m1 = await messageOf(client.joinNode({ nodeName: "n2", nodeSecret: "s".repeat(20), requests: { ...good.requests, clientCsr: admin.csr } }));
    expect(m1).toContain("requests.clientCsr: must ask for CN system:node:n2, O system:nodes");
    const wide = await createCsr({ commonName: "system:node:n2", organizations: [], sans: ["n2", "kubernetes.default"] });
    const m2 = await messageOf(client.joinNode({ nodeName: "n2", nodeSecret: "s".repeat(20), requests: { ...good.requests, servingCsr: wide.csr } }));
    expect(m2).toContain("(not kubernetes.default)");
    expect(await codeOf(client.joinNode({ nodeName: "n2", nodeSecret: "short", requests: good.requests }))).toBe(Code.InvalidArgument);
    expect(await codeOf(api.ops.get("Node")!.get("", "n2"))).toBe(Code.NotFound);
  });

  it("a node renews its own certificates only: the names come from its identity, not the request", async () => {
    const node = await pki.issueClient("system:node:n3", ["system:nodes"]);
    const t = createApiTransport(api.url, { ca: pki.ca.cert, ...node });
    const mine = await nodeCsrs("n3", ["n3"]);
    const res = await createClient(NodeIdentityService, t).renewNodeCertificates({ requests: mine.requests });
    expect(new X509Certificate(res.certificates!.clientCertificate).subject).toContain("CN=system:node:n3");
    const someoneElse = await nodeCsrs("n1", ["n1"]);
    expect(await codeOf(createClient(NodeIdentityService, t).renewNodeCertificates({ requests: someoneElse.requests }))).toBe(Code.InvalidArgument);
    const adminT = createApiTransport(api.url, pki.adminCredentials);
    expect(await codeOf(createClient(NodeIdentityService, adminT).renewNodeCertificates({ requests: mine.requests }))).toBe(Code.PermissionDenied);
  });

  it("the API refuses a token Secret with a field the authenticator would not act on", async () => {
    const bad = tokenSecret({ id: "abc999", secret: "0123456789abcdef", role: "agent", description: "" });
    bad.data["auth-extra-groups"] = new TextEncoder().encode("system:masters");
    const err = ConnectError.from(await createResourceClient(createApiTransport(api.url, pki.adminCredentials), "Secret").create(bad).catch((e: unknown) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("data[auth-extra-groups]: not a join token field");
  });

  it("an apiserver without the CA key refuses joins with what to do", async () => {
    const bare = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
    try {
      const t = createApiTransport(bare.url, pki.adminCredentials);
      const { requests } = await nodeCsrs("n4", ["n4"]);
      const err = ConnectError.from(await createClient(NodeIdentityService, t).joinNode({ nodeName: "n4", nodeSecret: "s".repeat(20), requests }).catch((e: unknown) => e));
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toContain("--cluster-signing-cert-file");
    } finally {
      await bare.close();
    }
  });
});
