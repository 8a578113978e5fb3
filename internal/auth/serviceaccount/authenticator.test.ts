import { compactVerify, decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createServiceAccountAuthenticator, type TokenObjectLookup } from "./authenticator.ts";
import { generateSigningKeyPem, signingKeyFromPem, verifyKeysFromPem } from "./keys.ts";
import { createTokenIssuer, DEFAULT_ISSUER } from "./token.ts";

const key = signingKeyFromPem(generateSigningKeyPem().privateKey);
const otherKey = signingKeyFromPem(generateSigningKeyPem().privateKey);

/** Objects that exist, by "namespace/name" → uid; tests delete from them. */
function world() {
  const accounts = new Map([["ci/build-bot", "sa-uid-1"]]);
  const pods = new Map([["ci/runner", "pod-uid-1"]]);
  const lookup: TokenObjectLookup = {
    serviceAccountUid: (ns, name) => accounts.get(`${ns}/${name}`),
    podUid: (ns, name) => pods.get(`${ns}/${name}`),
  };
  return { accounts, pods, lookup };
}

let clock = Date.parse("2026-01-01T00:00:00Z");
const now = () => clock;
const issuer = createTokenIssuer({ key, now });
const token = (over: { pod?: boolean; audiences?: string[]; seconds?: number; signer?: typeof key } = {}) =>
  createTokenIssuer({ key: over.signer ?? key, now }).issue({
    namespace: "ci",
    serviceAccount: { name: "build-bot", uid: "sa-uid-1" },
    audiences: over.audiences ?? [DEFAULT_ISSUER],
    expirationSeconds: over.seconds ?? 3600,
    pod: over.pod ? { name: "runner", uid: "pod-uid-1" } : undefined,
  });

function authn(lookup: TokenObjectLookup, keys = [{ publicKey: key.publicKey, keyId: key.keyId }]) {
  return createServiceAccountAuthenticator({ keys, lookup, now });
}

describe("service account tokens", () => {
  it("a valid token authenticates as system:serviceaccount:<ns>:<name> with the service account groups", async () => {
    const { lookup } = world();
    const { token: t, expiresAt } = await token();
    expect(expiresAt.getTime()).toBe(clock + 3600_000);
    expect(await authn(lookup).authenticate(t)).toEqual({
      name: "system:serviceaccount:ci:build-bot",
      groups: ["system:serviceaccounts", "system:serviceaccounts:ci"],
      uid: "sa-uid-1",
      authenticatedBy: "serviceaccount",
    });
    expect(issuer.issuer).toBe("https://kubernetes.default.svc");
  });

  it("is a standard ES256 JWS any JWT library verifies, with Kubernetes' claims; a changed claim breaks its signature", async () => {
    const { token: t } = await token({ pod: true });
    expect(decodeProtectedHeader(t)).toEqual({ alg: "ES256", kid: key.keyId, typ: "JWT" });
    const { payload } = await jwtVerify(t, key.publicKey, { issuer: DEFAULT_ISSUER, audience: DEFAULT_ISSUER, currentDate: new Date(clock) });
    expect(payload).toMatchObject({
      sub: "system:serviceaccount:ci:build-bot",
      aud: [DEFAULT_ISSUER],
      iat: clock / 1000,
      nbf: clock / 1000,
      exp: clock / 1000 + 3600,
      "kubernetes.io": { namespace: "ci", serviceaccount: { name: "build-bot", uid: "sa-uid-1" }, pod: { name: "runner", uid: "pod-uid-1" } },
    });
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    const [h, p, sig] = t.split(".");
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    claims.sub = "system:serviceaccount:kube-system:admin";
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
    await expect(compactVerify(tampered, key.publicKey)).rejects.toThrow(/signature verification failed/);
    expect(await authn(world().lookup).verify(tampered)).toEqual({ ok: false, reason: "signature does not verify with any trusted key" });
  });

  it("a verified token is answered synchronously from then on (no crypto on the hot path)", async () => {
    const { lookup } = world();
    const a = authn(lookup);
    const { token: t } = await token();
    await a.authenticate(t);
    const again = a.authenticate(t);
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as { name: string }).name).toBe("system:serviceaccount:ci:build-bot");
  });

  it("refuses an expired token, also one that expires after it was first accepted", async () => {
    const { lookup } = world();
    const a = authn(lookup);
    const { token: t } = await token({ seconds: 600 });
    expect(await a.authenticate(t)).toBeDefined();
    clock += 601_000;
    try {
      expect(await a.verify(t)).toEqual({ ok: false, reason: "token has expired" });
      // A fresh authenticator (no cache) says the same.
      expect(await authn(lookup).verify(t)).toEqual({ ok: false, reason: "token has expired" });
    } finally {
      clock -= 601_000;
    }
  });

  it("refuses a token for another audience", async () => {
    const { lookup } = world();
    const { token: t } = await token({ audiences: ["vault"] });
    expect(await authn(lookup).verify(t)).toEqual({ ok: false, reason: "token audience is not one of https://kubernetes.default.svc" });
    expect(await authn(lookup).authenticate(t)).toBeUndefined();
  });

  it("refuses the token of a deleted ServiceAccount, and of one deleted and made again (new uid)", async () => {
    const w = world();
    const a = authn(w.lookup);
    const { token: t } = await token();
    expect(await a.authenticate(t)).toBeDefined();
    w.accounts.delete("ci/build-bot");
    expect(await a.verify(t)).toEqual({ ok: false, reason: "serviceaccount ci/build-bot no longer exists" });
    w.accounts.set("ci/build-bot", "sa-uid-2");
    expect(await a.authenticate(t)).toBeUndefined();
  });

  it("refuses a pod-bound token once its pod is deleted", async () => {
    const w = world();
    const a = authn(w.lookup);
    const { token: t } = await token({ pod: true });
    expect((await a.authenticate(t))?.extra).toEqual({ "authentication.kubernetes.io/pod-name": ["runner"], "authentication.kubernetes.io/pod-uid": ["pod-uid-1"] });
    w.pods.delete("ci/runner");
    expect(await a.verify(t)).toEqual({ ok: false, reason: "pod ci/runner the token is bound to no longer exists" });
  });

  it("refuses a token signed with another key; accepts it once that key is trusted too", async () => {
    const { lookup } = world();
    const { token: t } = await token({ signer: otherKey });
    expect(await authn(lookup).verify(t)).toEqual({ ok: false, reason: "signature does not verify with any trusted key" });
    const both = verifyKeysFromPem(
      [key.publicKey.export({ type: "spki", format: "pem" }), otherKey.publicKey.export({ type: "spki", format: "pem" })].join(""),
    );
    expect(await authn(lookup, both).authenticate(t)).toBeDefined();
  });

  it("leaves tokens of other issuers and non-JWTs to other authenticators (undefined, not a refusal)", async () => {
    const { lookup } = world();
    const foreign = await new SignJWT({ sub: "x" }).setProtectedHeader({ alg: "ES256" }).setIssuer("https://elsewhere").setAudience(DEFAULT_ISSUER).setExpirationTime("1h").sign(key.privateKey);
    expect(await authn(lookup).verify(foreign)).toBeUndefined();
    expect(await authn(lookup).verify("31ada4fd-adec-460c-809a-9e56ceb75269")).toBeUndefined();
  });

  it("refuses a token whose sub does not match its kubernetes.io claim", async () => {
    const { lookup } = world();
    const forged = await new SignJWT({ "kubernetes.io": { namespace: "ci", serviceaccount: { name: "build-bot", uid: "sa-uid-1" } } })
      .setProtectedHeader({ alg: "ES256", kid: key.keyId })
      .setIssuer(DEFAULT_ISSUER)
      .setAudience(DEFAULT_ISSUER)
      .setSubject("system:serviceaccount:kube-system:admin")
      .setIssuedAt(clock / 1000)
      .setExpirationTime(clock / 1000 + 3600)
      .sign(key.privateKey);
    expect(await authn(lookup).verify(forged)).toEqual({ ok: false, reason: "sub does not match the kubernetes.io claim" });
  });

  it("keys must be ECDSA P-256", () => {
    expect(() => signingKeyFromPem("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")).toThrow();
    expect(() => verifyKeysFromPem("no pem here")).toThrow(/no PEM key found/);
  });
});
