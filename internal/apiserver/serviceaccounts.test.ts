// ServiceAccounts through the API (in-process apiserver on the memory store): CreateToken, the
// tokens it signs as the apiserver's authenticator sees them, pod admission, the kubernetes Service.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceAccountSchema, type ServiceAccount } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import { ServiceAccountService, ServiceAccountServiceCreateTokenRequestSchema } from "../../gen/skiff/v1alpha1/service_account_service_pb.js";
import type { ApiObject } from "../api/registry.ts";
import { generateSigningKeyPem, signingKeyFromPem } from "../auth/serviceaccount/keys.ts";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { testPod } from "../controller/node/testing.ts";
import { testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { startApiServer, type ApiServer } from "./server.ts";
import { createServiceAccounts } from "./serviceaccounts.ts";
import type { WatchCache } from "./watchcache.ts";

let server: ApiServer;
let transport: ReturnType<typeof createApiTransport>;
beforeAll(async () => {
  const pki = await testPki();
  server = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, serviceCidr: "10.97.0.0/16", advertiseAddress: "192.0.2.10" });
  transport = createApiTransport(server.url, pki.adminCredentials);
});
afterAll(async () => {
  await server?.close();
});

const accounts = () => createResourceClient<ServiceAccount>(transport, "ServiceAccount");
const pods = () => createResourceClient<Pod>(transport, "Pod");
const tokens = () => createClient(ServiceAccountService, transport);
const sa = (name: string, init: Partial<ServiceAccount> = {}) => create(ServiceAccountSchema, { metadata: { name, namespace: "default" }, ...init } as never);

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("ServiceAccountService.CreateToken", () => {
  it("issues a token that authenticates as the account until the account is deleted", async () => {
    await accounts().create(sa("build-bot"));
    const res = await tokens().createToken({ namespace: "default", name: "build-bot", expirationSeconds: 7200n });
    const expires = Number(res.expirationTimestamp!.seconds) * 1000;
    expect(Math.abs(expires - (Date.now() + 7200_000))).toBeLessThan(60_000);
    const user = await server.serviceAccountAuthenticator.authenticate(res.token);
    expect(user?.name).toBe("system:serviceaccount:default:build-bot");
    expect(user?.groups).toEqual(["system:serviceaccounts", "system:serviceaccounts:default"]);

    await accounts().delete("default", "build-bot");
    // The authenticator reads the watch cache, which follows the delete a moment later.
    await expect.poll(() => server.serviceAccountAuthenticator.verify(res.token)).toEqual({ ok: false, reason: "serviceaccount default/build-bot no longer exists" });
  });

  it("refuses bad requests with the field and the allowed range", async () => {
    await accounts().create(sa("ranges"));
    const short = await failure(tokens().createToken({ namespace: "default", name: "ranges", expirationSeconds: 599n }));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.message).toContain("expirationSeconds: must be from 600 (10m) to 172800 (48h), got 599");
    const long = await failure(tokens().createToken({ namespace: "default", name: "ranges", expirationSeconds: 172801n }));
    expect(long.code).toBe(Code.InvalidArgument);
    const missing = await failure(tokens().createToken({ namespace: "default", name: "nosuch" }));
    expect(missing.code).toBe(Code.NotFound);
    expect(missing.message).toContain('serviceaccount "nosuch" not found in namespace "default"');
  });

  it("binds a token to a pod of that account: it stops working when the pod is deleted", async () => {
    await accounts().create(sa("runner"));
    const p = testPod("bound-pod");
    p.spec!.serviceAccountName = "runner";
    const pod = await pods().create(p);
    const other = await pods().create(testPod("other-pod"));
    const wrongAccount = await failure(tokens().createToken({ namespace: "default", name: "runner", boundObjectRef: { kind: "Pod", name: other.metadata!.name } }));
    expect(wrongAccount.code).toBe(Code.FailedPrecondition);
    expect(wrongAccount.message).toContain('runs as serviceaccount "default", not "runner"');
    const wrongUid = await failure(tokens().createToken({ namespace: "default", name: "runner", boundObjectRef: { kind: "Pod", name: "bound-pod", uid: "not-it" } }));
    expect(wrongUid.code).toBe(Code.FailedPrecondition);

    const { token } = await tokens().createToken({ namespace: "default", name: "runner", boundObjectRef: { kind: "Pod", name: "bound-pod", uid: pod.metadata!.uid } });
    expect(await server.serviceAccountAuthenticator.authenticate(token)).toBeDefined();
    await pods().delete("default", "bound-pod", { gracePeriodSeconds: 0n });
    await expect.poll(() => server.serviceAccountAuthenticator.verify(token)).toEqual({ ok: false, reason: "pod default/bound-pod the token is bound to no longer exists" });
  });
  it("binds to the pod under that name now: right after a re-create the new uid gets its token, the old uid is refused", async () => {
    await accounts().create(sa("again"));
    const p = testPod("again-pod");
    p.spec!.serviceAccountName = "again";
    const first = await pods().create(p);
    await pods().delete("default", "again-pod", { gracePeriodSeconds: 0n });
    const second = await pods().create(p);
    expect(second.metadata!.uid).not.toBe(first.metadata!.uid);
    // At once: the watch cache may still hold the first pod; the token is bound to the second.
    const { token } = await tokens().createToken({ namespace: "default", name: "again", boundObjectRef: { kind: "Pod", name: "again-pod", uid: second.metadata!.uid } });
    const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
    expect(claims["kubernetes.io"].pod).toEqual({ name: "again-pod", uid: second.metadata!.uid });
    await expect.poll(() => server.serviceAccountAuthenticator.verify(token)).toMatchObject({ ok: true });
    const old = () =>
      tokens()
        .createToken({ namespace: "default", name: "again", boundObjectRef: { kind: "Pod", name: "again-pod", uid: first.metadata!.uid } })
        .then(() => "issued", (err) => Code[ConnectError.from(err).code]);
    await expect.poll(old).toBe("FailedPrecondition");
  });

  it("reads the bound pod from storage when the watch cache holds another uid under its name (a re-create it has not seen)", async () => {
    await accounts().create(sa("stale"));
    const p = testPod("stale-pod");
    p.spec!.serviceAccountName = "stale";
    const now = await pods().create(p);
    const cached = server.caches.get("Pod")!;
    const before = { ...now, metadata: { ...now.metadata!, uid: "the-pod-before" } } as unknown as ApiObject;
    // The cache as it is a moment after a delete and re-create: still the pod before.
    const staleCache = { ...cached, kind: cached.kind, get: (key: string) => (key.endsWith("/stale-pod") ? before : cached.get(key)) } as WatchCache;
    const { rpcs } = createServiceAccounts({
      signingKey: signingKeyFromPem(generateSigningKeyPem().privateKey),
      ops: server.ops,
      caches: new Map([...server.caches, ["Pod", staleCache]]),
    });
    const createToken = rpcs.createToken as (req: unknown) => Promise<{ token: string }>;
    const req = (uid: string) => create(ServiceAccountServiceCreateTokenRequestSchema, { namespace: "default", name: "stale", boundObjectRef: { kind: "Pod", name: "stale-pod", uid } });
    const { token } = await createToken(req(now.metadata!.uid));
    expect(JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString())["kubernetes.io"].pod.uid).toBe(now.metadata!.uid);
  });
});

describe("pod admission", () => {
  it("defaults serviceAccountName to default (made on the spot) and refuses an account that does not exist", async () => {
    const pod = await pods().create(testPod("plain"));
    expect(pod.spec!.serviceAccountName).toBe("default");
    expect((await accounts().get("default", "default")).metadata!.name).toBe("default");
    const p = testPod("ghost");
    p.spec!.serviceAccountName = "ghost";
    const err = await failure(pods().create(p));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toContain('spec.serviceAccountName: serviceaccount "ghost" not found in namespace "default": create it first');
  });

  it("copies the account's imagePullSecrets and automountServiceAccountToken: false into its pods", async () => {
    await accounts().create(sa("quiet", { automountServiceAccountToken: false, imagePullSecrets: [{ name: "regcred" }] } as never));
    const p = testPod("quiet-pod");
    p.spec!.serviceAccountName = "quiet";
    const pod = await pods().create(p);
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    expect(pod.spec!.imagePullSecrets.map((r) => r.name)).toEqual(["regcred"]);
    // The pod's own choice wins.
    const q = testPod("loud-pod");
    q.spec!.serviceAccountName = "quiet";
    q.spec!.automountServiceAccountToken = true;
    expect((await pods().create(q)).spec!.automountServiceAccountToken).toBe(true);
  });
});

describe("the kubernetes Service", () => {
  it("has the first address of the Service range, port 443 to the apiserver's port, and Endpoints at the advertised address", async () => {
    const svc = await createResourceClient<Service>(transport, "Service").get("default", "kubernetes");
    expect(svc.spec!.clusterIp).toBe("10.97.0.1");
    expect(svc.spec!.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([["https", 443, String(server.port)]]);
    const ep = await createResourceClient<Endpoints>(transport, "Endpoints").get("default", "kubernetes");
    expect(ep.subsets.map((s) => [s.addresses.map((a) => a.ip), s.ports.map((p) => p.port)])).toEqual([[["192.0.2.10"], [server.port]]]);
  });
});
