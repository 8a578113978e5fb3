// The cluster's authorization, assembled once per apiserver from its watch caches:
//
//   authorize(attrs) = node authorizer, then RBAC (union: first allow/deny wins, else deny)
//   revoker          = ends open watches whose caller a policy change refused
//   admit(write)     = node restriction + RBAC escalation prevention, for the admission step
import type { PersistentVolume } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { keyFor } from "../apiserver/objects.ts";
import type { WatchCache } from "../apiserver/watchcache.ts";
import { createNodeAuthorizer } from "./node/authorizer.ts";
import { createNodeGraph } from "./node/graph.ts";
import { admitNodeRestriction, type AdmissionRequest } from "./node/restriction.ts";
import { createRbacAuthorizer } from "./rbac/authorizer.ts";
import { createEscalationCheck } from "./rbac/escalation.ts";
import { createAccessRevoker, type AccessRevoker } from "./revocation.ts";
import type { Authorizer, PolicySource } from "./types.ts";
import { union } from "./union.ts";

export interface ClusterAuthorization {
  authorizer: Authorizer & PolicySource;
  revoker: AccessRevoker;
  /**
   * Admission for a write by `user` (after authorization allowed it, before storage): throws
   * PERMISSION_DENIED when a node writes what is not its own, or someone grants through RBAC
   * what they do not hold.
   */
  admit(req: AdmissionRequest): void;
  close(): void;
}

/** Needs the caches of Pod and of the four RBAC kinds, started (their first list is in). */
export function createClusterAuthorization(caches: Map<string, WatchCache>): ClusterAuthorization {
  const pods = caches.get("Pod");
  if (!pods) throw new Error("cluster authorization: no watch cache for Pod");
  const volumes = caches.get("PersistentVolume");
  const node = createNodeAuthorizer(createNodeGraph(pods), (name) => volumes?.get(keyFor(volumes.kind, "", name)) as PersistentVolume | undefined);
  const rbac = createRbacAuthorizer(caches);
  const authorizer = union(node, rbac);
  const revoker = createAccessRevoker(authorizer);
  const escalation = createEscalationCheck(rbac, caches);
  return {
    authorizer,
    revoker,
    admit(req) {
      admitNodeRestriction(req);
      if (req.object && req.operation !== "delete") escalation.admit({ user: req.user, kind: req.kind, object: req.object });
    },
    close() {
      revoker.close();
      node.close();
      rbac.close();
    },
  };
}
