// Verifying ServiceAccount tokens: the bearer-token authenticator of the request pipeline.
//
//   token ─► ours? (iss, unverified peek) ─► signature (ES256, trusted keys) + aud + exp + nbf
//         ─► the ServiceAccount still exists with the token's uid ─► the bound pod, if any, too
//         ─► UserInfo system:serviceaccount:<ns>:<name>, groups system:serviceaccounts[:<ns>]
//
// A verified signature is remembered per token until it expires, so that the hot path (the same
// token on every call of a pod) costs two map lookups; the existence checks run on every request
// and answer synchronously from the apiserver's watch caches when the lookup can.
import { decodeJwt, jwtVerify, type JWTPayload } from "jose";
import type { UserInfo } from "../types.ts";
import type { VerifyKey } from "./keys.ts";
import { DEFAULT_ISSUER, SERVICE_ACCOUNT_PREFIX, serviceAccountGroups, type KubernetesClaim } from "./token.ts";

type MaybePromise<T> = T | Promise<T>;

/** UserInfo.extra keys of a pod-bound token, as Kubernetes names them. */
export const POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name";
export const POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid";

/** Where the authenticator reads the objects a token names: uid if it exists, undefined if gone. */
export interface TokenObjectLookup {
  serviceAccountUid(namespace: string, name: string): MaybePromise<string | undefined>;
  podUid(namespace: string, name: string): MaybePromise<string | undefined>;
}

export type VerifyResult = { ok: true; user: UserInfo; expiresAt: Date } | { ok: false; reason: string };

export interface ServiceAccountAuthenticator {
  /** The pipeline's TokenAuthenticator slot: the user, or undefined (not ours, or invalid). */
  authenticate(token: string): MaybePromise<UserInfo | undefined>;
  /** undefined: not a token of this issuer (another authenticator may know it); else why not, or who. */
  verify(token: string): MaybePromise<VerifyResult | undefined>;
}

export interface AuthenticatorOptions {
  keys: VerifyKey[];
  lookup: TokenObjectLookup;
  issuer?: string;
  /** Audiences the apiserver accepts; a token must name one. Default: [issuer]. */
  audiences?: string[];
  now?: () => number;
  /** Verified tokens remembered (bounded; the oldest go first). Default 10,000. */
  cacheSize?: number;
  /** Called with the reason a token of this issuer was refused (for the apiserver's log). */
  onReject?: (reason: string) => void;
}

interface Verified {
  claims: KubernetesClaim;
  exp: number;
  audience: string[];
}

export function createServiceAccountAuthenticator(opts: AuthenticatorOptions): ServiceAccountAuthenticator {
  if (opts.keys.length === 0) throw new Error("service account authenticator: no public key to verify tokens with");
  const issuer = opts.issuer ?? DEFAULT_ISSUER;
  const audiences = opts.audiences ?? [issuer];
  const now = opts.now ?? Date.now;
  const cacheSize = opts.cacheSize ?? 10_000;
  const verified = new Map<string, Verified>();

  function remember(token: string, v: Verified): void {
    if (verified.size >= cacheSize) verified.delete(verified.keys().next().value!);
    verified.set(token, v);
  }

  async function checkSignature(token: string): Promise<Verified | string> {
    let payload: JWTPayload | undefined;
    let header: { kid?: string };
    try {
      header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8")) as { kid?: string };
    } catch {
      return "malformed token header";
    }
    // The key the token names first; a token without a known kid is tried against every key.
    const byKid = opts.keys.filter((k) => k.keyId === header.kid);
    for (const key of byKid.length > 0 ? byKid : opts.keys) {
      try {
        ({ payload } = await jwtVerify(token, key.publicKey, {
          issuer,
          audience: audiences,
          algorithms: ["ES256"],
          currentDate: new Date(now()),
          requiredClaims: ["exp", "sub"],
        }));
        break;
      } catch (err) {
        const code = (err as { code?: string }).code;
        // Only a bad signature is worth trying the next key for.
        if (code !== "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") return describe(code, (err as Error).message);
      }
    }
    if (!payload) return "signature does not verify with any trusted key";
    const claims = payload["kubernetes.io"] as KubernetesClaim | undefined;
    if (!claims?.namespace || !claims.serviceaccount?.name || !claims.serviceaccount.uid) return "missing the kubernetes.io claim";
    if (payload.sub !== `${SERVICE_ACCOUNT_PREFIX}${claims.namespace}:${claims.serviceaccount.name}`) return "sub does not match the kubernetes.io claim";
    const aud = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
    return { claims, exp: payload.exp! * 1000, audience: aud };
  }

  function describe(code: string | undefined, message: string): string {
    if (code === "ERR_JWT_EXPIRED") return "token has expired";
    if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && message.includes('"aud"')) return `token audience is not one of ${audiences.join(", ")}`;
    return message;
  }

  /** The objects the token names must still exist, with the uids it was issued for. */
  function checkObjects(v: Verified): MaybePromise<VerifyResult> {
    const { claims } = v;
    const ns = claims.namespace;
    const sa = claims.serviceaccount;
    const user: UserInfo = {
      name: `${SERVICE_ACCOUNT_PREFIX}${ns}:${sa.name}`,
      groups: serviceAccountGroups(ns),
      uid: sa.uid,
      authenticatedBy: "serviceaccount",
    };
    if (claims.pod) user.extra = { [POD_NAME_EXTRA]: [claims.pod.name], [POD_UID_EXTRA]: [claims.pod.uid] };
    const ok: VerifyResult = { ok: true, user, expiresAt: new Date(v.exp) };
    const podStep = (): MaybePromise<VerifyResult> => {
      if (!claims.pod) return ok;
      const pod = claims.pod;
      return then(opts.lookup.podUid(ns, pod.name), (uid) =>
        uid === pod.uid ? ok : { ok: false, reason: uid === undefined ? `pod ${ns}/${pod.name} the token is bound to no longer exists` : `pod ${ns}/${pod.name} was replaced (uid ${uid}, token for ${pod.uid})` },
      );
    };
    return then(opts.lookup.serviceAccountUid(ns, sa.name), (uid) => {
      if (uid === undefined) return { ok: false, reason: `serviceaccount ${ns}/${sa.name} no longer exists` };
      if (uid !== sa.uid) return { ok: false, reason: `serviceaccount ${ns}/${sa.name} was replaced (uid ${uid}, token for ${sa.uid})` };
      return podStep();
    });
  }

  function verify(token: string): MaybePromise<VerifyResult | undefined> {
    const cached = verified.get(token);
    if (cached) {
      if (cached.exp > now()) return checkObjects(cached);
      verified.delete(token);
      return { ok: false, reason: "token has expired" };
    }
    let iss: string | undefined;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return undefined; // not a JWT
    }
    if (iss !== issuer) return undefined;
    return checkSignature(token).then((v) => {
      if (typeof v === "string") return { ok: false, reason: v };
      remember(token, v);
      return checkObjects(v);
    });
  }

  return {
    verify,
    authenticate(token) {
      return then(verify(token), (r) => {
        if (r === undefined) return undefined;
        if (!r.ok) {
          opts.onReject?.(r.reason);
          return undefined;
        }
        return r.user;
      });
    },
  };
}

/** Continues synchronously when the value is already there. */
function then<T, U>(v: MaybePromise<T>, f: (x: T) => MaybePromise<U>): MaybePromise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}
