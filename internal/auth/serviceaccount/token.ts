// Issuing ServiceAccount tokens: JWTs signed ES256, with Kubernetes' claims so that
// clients and libraries written for Kubernetes tokens read them unchanged:
//
//   iss  the cluster's issuer           aud  who may accept it (the apiserver: its issuer URL)
//   sub  system:serviceaccount:<ns>:<name>
//   iat, nbf, exp, jti
//   kubernetes.io: { namespace, serviceaccount: {name, uid}, pod?: {name, uid} }
import { randomUUID, sign } from "node:crypto";
import type { SigningKey } from "./keys.ts";

/** Kubernetes' default issuer/audience is the apiserver's in-cluster name. */
export const DEFAULT_ISSUER = "https://kubernetes.default.svc";
export const MIN_EXPIRATION_SECONDS = 600;
export const DEFAULT_EXPIRATION_SECONDS = 3600;
export const MAX_EXPIRATION_SECONDS = 48 * 3600;

export const SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:";
export const ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts";

export function serviceAccountUsername(namespace: string, name: string): string {
  return `${SERVICE_ACCOUNT_PREFIX}${namespace}:${name}`;
}

export function serviceAccountGroups(namespace: string): string[] {
  return [ALL_SERVICE_ACCOUNTS_GROUP, `${ALL_SERVICE_ACCOUNTS_GROUP}:${namespace}`];
}

/** The private claim Kubernetes puts in its tokens. */
export interface KubernetesClaim {
  namespace: string;
  serviceaccount: { name: string; uid: string };
  pod?: { name: string; uid: string };
}

export interface TokenRequest {
  namespace: string;
  serviceAccount: { name: string; uid: string };
  audiences: string[];
  expirationSeconds: number;
  pod?: { name: string; uid: string };
}

export interface IssuedToken {
  token: string;
  expiresAt: Date;
}

export interface TokenIssuer {
  issuer: string;
  issue(req: TokenRequest): Promise<IssuedToken>;
}

export function createTokenIssuer(opts: { key: SigningKey; issuer?: string; now?: () => number }): TokenIssuer {
  const issuer = opts.issuer ?? DEFAULT_ISSUER;
  const now = opts.now ?? Date.now;
  // Signed here with node's crypto and the key object parsed once: a synchronous ECDSA sign
  // (tens of µs), where jose's WebCrypto path queued a thread-pool job per token (one per pod).
  const header = base64url({ alg: "ES256", kid: opts.key.keyId, typ: "JWT" });
  return {
    issuer,
    async issue(req) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + req.expirationSeconds;
      const claim: KubernetesClaim = { namespace: req.namespace, serviceaccount: { ...req.serviceAccount } };
      if (req.pod) claim.pod = { ...req.pod };
      const payload = base64url({
        "kubernetes.io": claim,
        iss: issuer,
        sub: serviceAccountUsername(req.namespace, req.serviceAccount.name),
        aud: req.audiences,
        iat,
        nbf: iat,
        exp,
        jti: randomUUID(),
      });
      const input = `${header}.${payload}`;
      // JWS ES256 wants the raw r‖s signature (IEEE P1363), not DER.
      const signature = sign("sha256", Buffer.from(input), { key: opts.key.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url");
      return { token: `${input}.${signature}`, expiresAt: new Date(exp * 1000) };
    },
  };
}

const base64url = (json: unknown) => Buffer.from(JSON.stringify(json)).toString("base64url");
