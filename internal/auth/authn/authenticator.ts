// Authentication: who is calling. A client certificate signed by the cluster CA (CN = user,
// O = groups) is checked once per connection and its identity kept on it until the certificate
// expires; bearer tokens go through the token authenticators (static file, ServiceAccount JWTs),
// their answers cached briefly. Every authenticated user is in `system:authenticated`; there is no anonymous user.
import { Code, ConnectError } from "@connectrpc/connect";
import type { TLSSocket } from "node:tls";
import type { UserInfo } from "../types.ts";
import type { TokenAuthenticator } from "./token.ts";

/** The connection a request came on. */
export interface Peer {
  /** One object per connection (the HTTP/2 session, or the HTTP/1.1 socket): the certificate's identity is cached on it. */
  key: object;
  socket: TLSSocket;
}

export interface Authenticator {
  /** The caller, or a ConnectError UNAUTHENTICATED. Synchronous when answered from a cache. */
  authenticate(peer: Peer, authorization: string | undefined): UserInfo | Promise<UserInfo>;
}

export interface AuthenticatorOptions {
  tokens?: TokenAuthenticator[];
  /** How long a token's identity is reused without asking the authenticators again. Default 10 s. */
  tokenCacheTtlMs?: number;
  /** Tokens remembered at most (oldest dropped first). Default 4096. */
  tokenCacheSize?: number;
  /** The clock (tests). */
  now?: () => number;
}

export const AUTHENTICATED_GROUP = "system:authenticated";

/** A verified certificate's identity is kept on its connection until the certificate's notAfter. */
type CertResult = { user: UserInfo; notAfter: number } | { error: string } | { none: true };

export function createAuthenticator(opts: AuthenticatorOptions = {}): Authenticator {
  const tokenAuthenticators = opts.tokens ?? [];
  const ttl = opts.tokenCacheTtlMs ?? 10_000;
  const maxTokens = opts.tokenCacheSize ?? 4096;
  const now = opts.now ?? Date.now;
  const byConnection = new WeakMap<object, CertResult>();
  const tokenCache = new Map<string, { user: UserInfo; until: number }>();

  function certOf(peer: Peer): CertResult {
    let r = byConnection.get(peer.key);
    if (!r) byConnection.set(peer.key, (r = verifyPeer(peer.socket)));
    return r;
  }

  async function byToken(token: string): Promise<UserInfo> {
    for (const a of tokenAuthenticators) {
      let user: UserInfo | undefined;
      try {
        user = await a.authenticate(token);
      } catch (err) {
        throw new ConnectError(`bearer token could not be verified: ${(err as Error).message}`, Code.Unauthenticated);
      }
      if (user) {
        const u = withAuthenticatedGroup(user);
        // Bootstrap tokens are answered from the watch cache already, and a deleted or expired
        // one must stop working at once: not cached.
        if (u.authenticatedBy === "bootstrap-token") return u;
        if (tokenCache.size >= maxTokens) tokenCache.delete(tokenCache.keys().next().value!);
        tokenCache.set(token, { user: u, until: Date.now() + ttl });
        return u;
      }
    }
    throw new ConnectError("bearer token rejected: it is unknown, expired or revoked; get a new one (skiffctl create token, or ask the cluster admin)", Code.Unauthenticated);
  }

  return {
    authenticate(peer, authorization) {
      const cert = certOf(peer);
      // A connection may outlive its certificate: the identity ends with it.
      if ("user" in cert && now() <= cert.notAfter) return cert.user;
      if (authorization !== undefined) {
        const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
        if (!m) throw new ConnectError('the Authorization header must be "Bearer <token>"', Code.Unauthenticated);
        const hit = tokenCache.get(m[1]);
        if (hit && hit.until > Date.now()) return hit.user;
        if (hit) tokenCache.delete(m[1]);
        return byToken(m[1]);
      }
      if ("user" in cert) throw new ConnectError(`client certificate rejected: ${explainCertError("CERT_HAS_EXPIRED")} (it expired while this connection was open)`, Code.Unauthenticated);
      if ("error" in cert) throw new ConnectError(`client certificate rejected: ${cert.error}`, Code.Unauthenticated);
      throw new ConnectError(
        "no credentials: present a client certificate signed by the cluster CA or an Authorization: Bearer token (skiffctl: --client-certificate/--client-key or --token, or a context in its config file)",
        Code.Unauthenticated,
      );
    },
  };
}

function verifyPeer(socket: TLSSocket): CertResult {
  const cert = socket.getPeerCertificate?.();
  if (!cert || Object.keys(cert).length === 0) return { none: true };
  if (!socket.authorized) return { error: explainCertError(String(socket.authorizationError ?? "not verified")) };
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  if (!name) return { error: "it has no common name (CN), which names the user" };
  const o = cert.subject?.O;
  const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
  const notAfter = Date.parse(cert.valid_to);
  if (Number.isNaN(notAfter)) return { error: "its validity period cannot be read" };
  return { user: withAuthenticatedGroup({ name, groups, authenticatedBy: "x509" }), notAfter };
}

function explainCertError(code: string): string {
  switch (code) {
    case "CERT_HAS_EXPIRED":
      return "it has expired; get a new one from the cluster admin";
    case "CERT_NOT_YET_VALID":
      return "it is not valid yet (check the clocks)";
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "CERT_SIGNATURE_FAILURE":
      return "it is not signed by the cluster CA";
    default:
      return code;
  }
}

export function withAuthenticatedGroup(u: UserInfo): UserInfo {
  return u.groups.includes(AUTHENTICATED_GROUP) ? u : { ...u, groups: [...u.groups, AUTHENTICATED_GROUP] };
}
