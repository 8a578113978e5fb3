// Bootstrap-token authentication: `Bearer <id>.<secret>` is looked up among the token Secrets in
// the apiserver's Secret watch cache (no storage read per request), its secret compared in
// constant time and its expiry checked. The caller becomes `system:bootstrap:<id>` in
// `system:bootstrappers` and `system:bootstrappers:<role>`.
import { timingSafeEqual } from "node:crypto";
import type { Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { TokenAuthenticator } from "../auth/authn/token.ts";
import type { UserInfo } from "../auth/types.ts";
import { BOOTSTRAP_USER_PREFIX, BOOTSTRAPPERS_GROUP, isExpired, parseBearer, readTokenSecret, roleGroup, TOKEN_NAMESPACE, TOKEN_SECRET_PREFIX } from "./token.ts";

/** Reads one Secret by namespace and name (the apiserver passes its watch cache). */
export type SecretLookup = (namespace: string, name: string) => Secret | undefined;

export function createBootstrapTokenAuthenticator(lookup: SecretLookup, now: () => number = Date.now): TokenAuthenticator {
  return {
    authenticate(token: string): UserInfo | undefined {
      const presented = parseBearer(token);
      if (!presented) return undefined;
      const secret = lookup(TOKEN_NAMESPACE, `${TOKEN_SECRET_PREFIX}${presented.id}`);
      const stored = secret && readTokenSecret(secret);
      if (!stored) return undefined;
      const a = Buffer.from(stored.secret);
      const b = Buffer.from(presented.secret);
      if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
      if (isExpired(stored, now())) return undefined;
      return {
        name: `${BOOTSTRAP_USER_PREFIX}${stored.id}`,
        groups: [BOOTSTRAPPERS_GROUP, roleGroup(stored.role)],
        authenticatedBy: "bootstrap-token",
      };
    },
  };
}
