// Authorization end to end, as clients meet it: real TLS identities against the apiserver on etcd,
// every call through the request pipeline (authentication → node authorizer + RBAC → admission).
// - jane (a certificate), bound to `view` in namespace a, over Connect, gRPC (direct path),
//   gRPC-Web and Connect-JSON over HTTP/1.1: reads pods in a, may not create, sees nothing of b;
//   watches opened under the binding end with PERMISSION_DENIED once it is removed;
// - an agent with its own node certificate: may not write another Node or another node's pod
//   status, nor read a Secret none of its pods uses; reads its own pods' Secret;
// - `skiffctl auth can-i … --as jane` and `skiffctl auth whoami` through the real binary;
// - an expired ServiceAccount token is UNAUTHENTICATED (a fresh one from the same key works).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthorizationService } from "../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { ServiceAccountSchema } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import { createTokenIssuer, signingKeyFromPem } from "../../internal/auth/serviceaccount/index.ts";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

const RBAC = "rbac.authorization.k8s.io";
let cp: ControlPlane;
let jane: { cert: string; key: string };
beforeAll(async () => {
  cp = await startControlPlane();
  for (const name of ["a", "b"]) await cp.client("Namespace").create(create(NamespaceSchema, { metadata: { name } }));
  await cp.client("Pod").create(pod("web", "a"));
  await cp.client("Pod").create(pod("db", "b"));
  jane = await cp.pki.issueClient("jane", ["devs"]);
}, 60_000);
afterAll(() => cp?.stop());

function pod(name: string, namespace: string, spec: object = {}): Pod {
  return create(PodSchema, { metadata: { name, namespace }, spec: { containers: [{ name: "c", image: "busybox" }], ...spec } });
}

type Protocol = (baseUrl: string, nodeOptions: { ca: string; cert: string; key: string }) => Transport;
const protocols: Record<string, Protocol> = {
  "Connect": (baseUrl, nodeOptions) => createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions }),
  "gRPC (direct path)": (baseUrl, nodeOptions) => createGrpcTransport({ baseUrl, nodeOptions }),
  "gRPC-Web": (baseUrl, nodeOptions) => createGrpcWebTransport({ baseUrl, httpVersion: "2", nodeOptions }),
  "Connect-JSON over HTTP/1.1": (baseUrl, nodeOptions) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, nodeOptions }),
};
const asJane = (p: Protocol) => p(cp.server.url, { ca: cp.pki.ca.cert, ...jane });

async function failure(p: Promise<unknown>): Promise<ConnectError | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err);
  }
}
const codeOf = async (p: Promise<unknown>) => {
  const r = await failure(p);
  return r === "ok" ? r : Code[r.code];
};

/** A pod watch in `namespace`: `started` once the first event came, `ended` with its error. */
function openWatch(t: Transport, namespace: string) {
  const abort = new AbortController();
  let first!: () => void;
  const started = new Promise<void>((r) => (first = r));
  const ended = (async () => {
    try {
      for await (const _ of createClient(PodService, t).watch({ namespace }, { signal: abort.signal })) first();
      return new ConnectError("the watch ended without an error", Code.Unknown);
    } catch (err) {
      first();
      return ConnectError.from(err);
    }
  })();
  return { started, ended, stop: () => abort.abort() };
}

describe("a user bound to view in namespace a", () => {
  beforeAll(async () => {
    await cp.client("RoleBinding").create(
      create(RoleBindingSchema, { metadata: { name: "jane-view", namespace: "a" }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "view" }, subjects: [{ kind: "User", name: "jane" }] }),
    );
    const pods = createClient(PodService, asJane(protocols["gRPC (direct path)"]));
    // The binding reaches the authorizer through the watch cache.
    for (let i = 0; (await codeOf(pods.list({ namespace: "a" }))) !== "ok"; i++) {
      if (i > 200) throw new Error("jane's binding never took effect");
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  for (const [name, protocol] of Object.entries(protocols)) {
    it(`${name}: reads pods in a, may not create there, sees nothing of b`, async () => {
      const pods = createClient(PodService, asJane(protocol));
      expect((await pods.get({ namespace: "a", name: "web" })).pod?.metadata?.name).toBe("web");
      expect((await pods.list({ namespace: "a" })).items.map((p) => p.metadata?.name)).toEqual(["web"]);
      const w = openWatch(asJane(protocol), "a");
      await w.started;
      w.stop();
      const denied = await failure(pods.create({ pod: pod("mine", "a") }));
      expect(denied === "ok" ? "ok" : [Code[denied.code], denied.rawMessage]).toEqual([
        "PermissionDenied",
        'pods is forbidden: User "jane" cannot create resource "pods" in API group "" in the namespace "a"',
      ]);
      expect(await codeOf(pods.get({ namespace: "b", name: "db" }))).toBe("PermissionDenied");
      expect(await codeOf(pods.list({ namespace: "b" }))).toBe("PermissionDenied");
      expect(await codeOf(pods.list({ namespace: "" }))).toBe("PermissionDenied");
      const other = openWatch(asJane(protocol), "b");
      expect(Code[(await other.ended).code]).toBe("PermissionDenied");
    });
  }

  it("watches opened under the binding end with PERMISSION_DENIED once it is removed, on every protocol", async () => {
    const watches = Object.values(protocols).map((p) => openWatch(asJane(p), "a"));
    await Promise.all(watches.map((w) => w.started));
    await cp.client("RoleBinding").delete("a", "jane-view");
    // No deadline here but the test's: a watch that is never ended fails it.
    const ended = await Promise.all(watches.map((w) => w.ended));
    expect(ended.map((e) => Code[e.code])).toEqual(["PermissionDenied", "PermissionDenied", "PermissionDenied", "PermissionDenied"]);
    expect(ended[1].rawMessage).toMatch(/^pods is forbidden: User "jane" cannot watch resource "pods" in API group "" in the namespace "a"/);
  }, 30_000);
});

describe("an agent with its own node certificate", () => {
  it("writes only its own Node and pods, and reads only its own pods' Secrets", async () => {
    const admin = (k: string) => cp.client(k);
    for (const name of ["n1", "n2"]) await admin("Node").create(create(NodeSchema, { metadata: { name } }));
    for (const name of ["n1-secret", "n2-secret", "unused"]) await admin("Secret").create(create(SecretSchema, { metadata: { name, namespace: "a" }, data: { k: new Uint8Array([1]) } }));
    await admin("Pod").create(pod("on-n1", "a", { nodeName: "n1", imagePullSecrets: [{ name: "n1-secret" }] }));
    await admin("Pod").create(pod("on-n2", "a", { nodeName: "n2", imagePullSecrets: [{ name: "n2-secret" }] }));

    const n1 = createApiTransport(cp.server.url, await cp.pki.nodeCredentials("n1"));
    const secrets = createResourceClient<Secret>(n1, "Secret");
    // The node graph follows the pods' bindings through the watch cache.
    await expect.poll(() => codeOf(secrets.get("a", "n1-secret")), { timeout: 10_000, interval: 50 }).toBe("ok");
    expect(await codeOf(secrets.get("a", "n2-secret"))).toBe("PermissionDenied");
    expect(await codeOf(secrets.get("a", "unused"))).toBe("PermissionDenied");

    const nodes = createResourceClient<Node>(n1, "Node");
    const other = await admin("Node").get("", "n2");
    other.metadata!.labels = { stolen: "yes" };
    expect(await codeOf(nodes.update(other as Node))).toBe("PermissionDenied");
    expect(await codeOf(nodes.updateStatus(other as Node))).toBe("PermissionDenied");
    const own = await nodes.get("", "n1");
    own.metadata!.labels = { zone: "here" };
    expect(await codeOf(nodes.update(own))).toBe("ok");

    const pods = createResourceClient<Pod>(n1, "Pod");
    const theirs = (await admin("Pod").get("a", "on-n2")) as Pod;
    theirs.status!.message = "written by n1";
    expect(await codeOf(pods.updateStatus(theirs))).toBe("PermissionDenied");
    const mine = (await admin("Pod").get("a", "on-n1")) as Pod;
    mine.status!.message = "written by n1";
    expect(await codeOf(pods.updateStatus(mine))).toBe("ok");
    // Its pods, and only through the selector that names it.
    expect((await pods.list("", { fieldSelector: "spec.nodeName=n1" })).items.map((p) => p.metadata?.name)).toEqual(["on-n1"]);
    expect(await codeOf(pods.list(""))).toBe("PermissionDenied");
  });
});

describe("skiffctl auth", () => {
  it("can-i --as jane answers for jane (impersonated by the admin), whoami names the caller", async () => {
    await cp.client("RoleBinding").create(
      create(RoleBindingSchema, { metadata: { name: "jane-edit", namespace: "b" }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "edit" }, subjects: [{ kind: "User", name: "jane" }] }),
    );
    const run = (...args: string[]) => spawnSkiffctl(cp.server.url, args).done;
    await expect.poll(async () => (await run("auth", "can-i", "create", "pods", "-n", "b", "--as", "jane")).out, { timeout: 10_000, interval: 100 }).toBe("yes\n");
    const no = await run("auth", "can-i", "create", "pods", "-n", "a", "--as", "jane");
    expect([no.code, no.out]).toEqual([1, 'no - User "jane" cannot create resource "pods" in API group "" in the namespace "a"\n']);
    const me = await run("auth", "whoami", "-o", "json");
    expect(JSON.parse(me.out)).toMatchObject({ username: "admin", groups: expect.arrayContaining(["system:masters", "system:authenticated"]), authenticatedBy: "x509" });
    const asJane = await run("auth", "whoami", "-o", "json", "--as", "jane");
    expect(JSON.parse(asJane.out)).toMatchObject({ username: "jane" });
  }, 30_000);
});

describe("ServiceAccount tokens", () => {
  it("an expired token is UNAUTHENTICATED; a current one from the same key authenticates", async () => {
    const sa = await cp.client("ServiceAccount").create(create(ServiceAccountSchema, { metadata: { name: "robot", namespace: "a" } }));
    const key = signingKeyFromPem(cp.pki.serviceAccountKey.privateKey);
    const request = { namespace: "a", serviceAccount: { name: "robot", uid: sa.metadata!.uid }, audiences: ["https://kubernetes.default.svc"], expirationSeconds: 600 };
    const expired = await createTokenIssuer({ key, now: () => Date.now() - 3600_000 }).issue(request);
    const current = await createTokenIssuer({ key }).issue(request);
    const whoAmI = (token: string) => createClient(AuthorizationService, createApiTransport(cp.server.url, { ca: cp.pki.ca.cert, token })).whoAmI({});
    const err = await failure(whoAmI(expired.token));
    expect(err === "ok" ? "ok" : Code[err.code]).toBe("Unauthenticated");
    expect((await whoAmI(current.token)).userInfo?.username).toBe("system:serviceaccount:a:robot");
  });
});
