// Issuing ServiceAccount tokens: JWTs signed ES256 (jose), with Kubernetes' claims so that
// clients and libraries written for Kubernetes tokens read them unchanged:
//
//   iss  the cluster's issuer           aud  who may accept it (the apiserver: its issuer URL)
//   sub  system:serviceaccount:<ns>:<name>
//   iat, nbf, exp, jti
//   kubernetes.io: { namespace, serviceaccount: {name, uid}, pod?: {name, uid} }
import { SignJWT } from "jose";
import { randomUUID } from "node:crypto";
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
  return {
    issuer,
    async issue(req) {
      const iat = Math.floor(now() / 1000);
      const exp = iat + req.expirationSeconds;
      const claim: KubernetesClaim = { namespace: req.namespace, serviceaccount: { ...req.serviceAccount } };
      if (req.pod) claim.pod = { ...req.pod };
      const token = await new SignJWT({ "kubernetes.io": claim })
        .setProtectedHeader({ alg: "ES256", kid: opts.key.keyId, typ: "JWT" })
        .setIssuer(issuer)
        .setSubject(serviceAccountUsername(req.namespace, req.serviceAccount.name))
        .setAudience(req.audiences)
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(opts.key.privateKey);
      return { token, expiresAt: new Date(exp * 1000) };
    },
  };
}
