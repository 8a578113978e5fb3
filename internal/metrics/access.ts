// Who may read a component's /metrics: the caller is authenticated (a client certificate signed
// by the cluster CA, or a bearer token) and then authorized by the apiserver's RBAC, as Kubernetes
// components delegate it (`get` on the non-resource path "/metrics"):
//   certificate → AuthorizationService.CreateSubjectAccessReview, asked as this component
//   bearer token → CreateSelfSubjectAccessReview, asked with the caller's own token (the apiserver
//                  authenticates it: an unknown token is refused there)
// Answers are cached briefly (both ways), so a scrape every few seconds costs no API call.
import { createClient, Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createHash } from "node:crypto";
import { AuthorizationService } from "../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { createAuthenticator, type Peer } from "../auth/authn/authenticator.ts";
import { createApiTransport } from "../client/transport.ts";

export type AccessAnswer = { allowed: true } | { allowed: false; status: 401 | 403; message: string };

export interface MetricsAccess {
  /** May the caller on `peer` (with this Authorization header) `get` this path? */
  check(peer: Peer, authorization: string | undefined, path: string): Promise<AccessAnswer>;
}

export interface MetricsAccessOptions {
  /** This component's connection to the apiserver (its own identity asks the reviews). */
  transport: Transport;
  /** For bearer tokens: the apiserver URL and its CA, to ask with the caller's token. */
  server?: { url: string; ca: string };
  /** How long an answer is reused. Default 10 s. */
  cacheTtlMs?: number;
  now?: () => number;
}

const MAX_CACHED = 1024;

export function createMetricsAccess(opts: MetricsAccessOptions): MetricsAccess {
  const authn = createAuthenticator({ tokens: [] });
  const reviews = createClient(AuthorizationService, opts.transport);
  const ttl = opts.cacheTtlMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { answer: AccessAnswer; until: number }>();

  async function cached(key: string, ask: () => Promise<AccessAnswer>): Promise<AccessAnswer> {
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.answer;
    const answer = await ask();
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, { answer, until: now() + ttl });
    return answer;
  }

  const denied = (who: string, path: string, reason: string): AccessAnswer => ({
    allowed: false,
    status: 403,
    message: `forbidden: ${who} cannot get path "${path}"${reason ? `: ${reason}` : ""}`,
  });

  async function byToken(token: string, path: string): Promise<AccessAnswer> {
    if (!opts.server) return { allowed: false, status: 401, message: "bearer tokens are not accepted here: present a client certificate signed by the cluster CA" };
    const key = `t:${createHash("sha256").update(token).digest("base64")}:${path}`;
    return cached(key, async () => {
      const client = createClient(AuthorizationService, createApiTransport(opts.server!.url, { ca: opts.server!.ca, token }));
      try {
        const r = await client.createSelfSubjectAccessReview({ nonResourceAttributes: { verb: "get", path } }, { timeoutMs: 10_000 });
        return r.status?.allowed ? { allowed: true } : denied("the bearer token's user", path, r.status?.reason ?? "");
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated) return { allowed: false, status: 401, message: e.rawMessage };
        throw e;
      }
    });
  }

  return {
    async check(peer, authorization, path) {
      let user;
      try {
        const bearer = authorization && /^Bearer\s+(\S+)\s*$/i.exec(authorization);
        const fromCert = peer.socket.getPeerCertificate?.();
        if (bearer && !(fromCert && Object.keys(fromCert).length > 0 && peer.socket.authorized)) return await byToken(bearer[1], path);
        user = await authn.authenticate(peer, undefined);
      } catch (err) {
        return { allowed: false, status: 401, message: ConnectError.from(err).rawMessage };
      }
      const key = `u:${user.name}\0${user.groups.join(",")}\0${path}`;
      return cached(key, async () => {
        const r = await reviews.createSubjectAccessReview({ user: user.name, groups: user.groups, nonResourceAttributes: { verb: "get", path } }, { timeoutMs: 10_000 });
        return r.status?.allowed ? { allowed: true } : denied(`User "${user.name}"`, path, r.status?.reason ?? "");
      });
    },
  };
}
