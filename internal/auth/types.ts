// The vocabulary of the request pipeline, shared by authentication, authorization and admission:
//
//   TLS → authenticate → impersonate (--as) → authorize (node authorizer, then RBAC) → admission
//
// Names follow Kubernetes (user.Info, authorizer.Attributes, authorizer.Decision) so that its
// documentation reads across.
import { createContextKey } from "@connectrpc/connect";

/** Who made a request, as authentication found it (after impersonation, if any). */
export interface UserInfo {
  /** "admin", "system:node:worker-1", "system:serviceaccount:ci:build-bot" */
  name: string;
  /** "system:masters", "system:nodes", "system:serviceaccounts", "system:authenticated", … */
  groups: string[];
  uid?: string;
  /** How the identity was proven: for logs and `auth whoami`. */
  authenticatedBy?: "x509" | "token-file" | "serviceaccount" | "bootstrap-token";
  /**
   * More about the identity (Kubernetes' user.Info extra): a ServiceAccount token bound to a pod
   * carries "authentication.kubernetes.io/pod-name" and "authentication.kubernetes.io/pod-uid".
   */
  extra?: Record<string, string[]>;
}

/** Kubernetes' verbs, as RBAC rules name them. */
export type Verb = "get" | "list" | "watch" | "create" | "update" | "patch" | "delete" | "deletecollection" | "impersonate" | "bind" | "escalate";

/** One request, as authorizers see it. */
export interface RequestAttributes {
  user: UserInfo;
  verb: Verb;
  /** The API group as manifests name it: "" for the core kinds, "apps", "rbac.authorization.k8s.io", … */
  apiGroup: string;
  /** The plural resource: "pods", "nodes", "leases"; for impersonation "users" / "groups" / "serviceaccounts". */
  resource: string;
  /** "status", "binding", "log", "exec", or "". */
  subresource: string;
  /** "" for cluster-scoped resources and for list/watch across all namespaces. */
  namespace: string;
  /** "" for list, watch and create without a name. */
  name: string;
  /**
   * The request's field selector (list and watch): the node authorizer lets an agent list and
   * watch pods only with `spec.nodeName=<its node>`.
   */
  fieldSelector?: string;
  labelSelector?: string;
  /** Set for requests outside the API ("/metrics", "/healthz"): then resource and apiGroup are "". */
  path?: string;
}

/**
 * Which requests a policy change may decide differently, when it is not everyone's (an RBAC
 * binding or role changed: no scope): those of these users, and anyone's that name this object.
 * A pod bound to a node changes what that node may read and the answers about that pod, nothing
 * else; so open watches of the other 499 nodes need no re-check.
 */
export interface PolicyChangeScope {
  users: string[];
  object?: { resource: string; namespace: string; name: string };
}

/** Authorizers whose answers depend on objects (RBAC bindings, pods bound to nodes) say when they changed. */
export interface PolicySource {
  /** Calls `listener` (synchronously, after the change is visible to authorize()); returns unsubscribe. */
  onPolicyChange(listener: (scope?: PolicyChangeScope) => void): () => void;
}

/** An authorizer's answer. `reason` goes into logs and (for denials) into the error message. */
export interface Decision {
  decision: "allow" | "deny" | "no-opinion";
  reason: string;
}

/**
 * Synchronous on purpose: authorizers answer from in-memory state (the apiserver's watch caches),
 * so the hot path pays no I/O (`npm run bench -- api` measures the cost per request).
 */
export interface Authorizer {
  authorize(a: RequestAttributes): Decision;
}

/** Where handlers find the caller, on every path (Connect, gRPC, gRPC-Web and the direct gRPC path). */
export const userKey = createContextKey<UserInfo | undefined>(undefined, { description: "the authenticated caller" });
