// The cluster's authorization, assembled once per apiserver from its watch caches:
//
//   authorize(attrs) = node authorizer, then RBAC (union: first allow/deny wins, else deny)
//   revoker          = ends open watches whose caller a policy change refused
import type { WatchCache } from "../apiserver/watchcache.ts";
import { createNodeAuthorizer } from "./node/authorizer.ts";
import { createNodeGraph } from "./node/graph.ts";
import { createRbacAuthorizer } from "./rbac/authorizer.ts";
import { createAccessRevoker, type AccessRevoker } from "./revocation.ts";
import type { Authorizer, PolicySource } from "./types.ts";
import { union } from "./union.ts";

export interface ClusterAuthorization {
  authorizer: Authorizer & PolicySource;
  revoker: AccessRevoker;
  close(): void;
}

/** Needs the caches of Pod and of the four RBAC kinds, started (their first list is in). */
export function createClusterAuthorization(caches: Map<string, WatchCache>): ClusterAuthorization {
  const pods = caches.get("Pod");
  if (!pods) throw new Error("cluster authorization: no watch cache for Pod");
  const node = createNodeAuthorizer(createNodeGraph(pods));
  const rbac = createRbacAuthorizer(caches);
  const authorizer = union(node, rbac);
  const revoker = createAccessRevoker(authorizer);
  return {
    authorizer,
    revoker,
    close() {
      revoker.close();
      node.close();
      rbac.close();
    },
  };
}
