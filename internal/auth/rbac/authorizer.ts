// The RBAC authorizer: answers from the apiserver's watch caches of Roles, ClusterRoles,
// RoleBindings and ClusterRoleBindings, synchronously, on every request.
//
//   request (user, groups) ─► subject keys: the user, each group
//     ─► ClusterRoleBindings of those subjects ─► their ClusterRole's rules   (any namespace)
//     ─► RoleBindings of those subjects in the request's namespace
//            ─► their Role's or ClusterRole's rules                          (that namespace only)
//   first rule that matches ─► allow; none ─► no-opinion with Kubernetes' "cannot" text
//
// Bindings are indexed by subject (kept current from the caches' change feed), so a check costs
// a few map lookups plus the rules of the bindings that name the caller. Roles are read from
// the cache at check time, so a changed role takes effect with the cache.
import type { ClusterRoleBinding, PolicyRule, RoleBinding, Subject } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import { keyFor } from "../../apiserver/objects.ts";
import type { WatchCache } from "../../apiserver/watchcache.ts";
import type { Authorizer, Decision, PolicySource, RequestAttributes, UserInfo } from "../types.ts";
import { forbiddenReason, ruleAllows } from "./rules.ts";

/** Members of this group may do anything, bindings or not (Kubernetes hard-wires it the same way). */
export const SUPERUSER_GROUP = "system:masters";

export const RBAC_KINDS = ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] as const;

export type RbacCaches = Pick<Map<string, Pick<WatchCache, "kind" | "get" | "list" | "onChange">>, "get">;

export interface RbacAuthorizer extends Authorizer, PolicySource {
  /**
   * Every rule that applies to the user in `namespace` ("" = cluster-wide rules only), or
   * undefined for members of system:masters (everything): for the escalation check.
   */
  rulesFor(user: UserInfo, namespace: string): PolicyRule[] | undefined;
  /** Stops following the caches. */
  close(): void;
}

type Binding = (RoleBinding | ClusterRoleBinding) & ApiObject;

/** The key a subject is indexed under: ServiceAccounts are the users they authenticate as. */
export function subjectKey(s: Pick<Subject, "kind" | "name" | "namespace">): string | undefined {
  switch (s.kind) {
    case "User":
      return `u:${s.name}`;
    case "Group":
      return `g:${s.name}`;
    case "ServiceAccount":
      return `u:system:serviceaccount:${s.namespace}:${s.name}`;
    default:
      return undefined;
  }
}

/** subject key → bindings naming it, kept incrementally by binding storage key. */
function createSubjectIndex() {
  const bySubject = new Map<string, Map<string, Binding>>();
  const keysOf = new Map<string, string[]>();
  function remove(key: string): void {
    for (const s of keysOf.get(key) ?? []) {
      const m = bySubject.get(s);
      if (m?.delete(key) && m.size === 0) bySubject.delete(s);
    }
    keysOf.delete(key);
  }
  function put(key: string, b: Binding): void {
    remove(key);
    const subjects = [...new Set(b.subjects.map(subjectKey).filter((s): s is string => s !== undefined))];
    for (const s of subjects) {
      let m = bySubject.get(s);
      if (!m) bySubject.set(s, (m = new Map()));
      m.set(key, b);
    }
    keysOf.set(key, subjects);
  }
  return {
    put,
    remove,
    clear() {
      bySubject.clear();
      keysOf.clear();
    },
    get: (subject: string) => bySubject.get(subject)?.values() ?? [],
  };
}

export function createRbacAuthorizer(caches: RbacCaches): RbacAuthorizer {
  const cache = (k: (typeof RBAC_KINDS)[number]) => {
    const c = caches.get(k);
    if (!c) throw new Error(`RBAC authorizer: no watch cache for ${k}`);
    return c;
  };
  const roles = cache("Role");
  const clusterRoles = cache("ClusterRole");
  const roleBindings = cache("RoleBinding");
  const clusterRoleBindings = cache("ClusterRoleBinding");
  const clusterIndex = createSubjectIndex();
  // RoleBindings by namespace, then by subject.
  const nsIndexes = new Map<string, ReturnType<typeof createSubjectIndex>>();
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const l of listeners) l();
  };

  const storageKey = (o: ApiObject, c: Pick<WatchCache, "kind">) => keyFor(c.kind, o.metadata?.namespace ?? "", o.metadata?.name ?? "");
  function indexCluster(o: ApiObject, deleted: boolean): void {
    const key = storageKey(o, clusterRoleBindings);
    if (deleted) clusterIndex.remove(key);
    else clusterIndex.put(key, o as Binding);
  }
  function indexNamespaced(o: ApiObject, deleted: boolean): void {
    const ns = o.metadata?.namespace ?? "";
    const key = storageKey(o, roleBindings);
    let idx = nsIndexes.get(ns);
    if (deleted) {
      idx?.remove(key);
      return;
    }
    if (!idx) nsIndexes.set(ns, (idx = createSubjectIndex()));
    idx.put(key, o as Binding);
  }
  const rebuildCluster = () => {
    clusterIndex.clear();
    for (const o of clusterRoleBindings.list()) indexCluster(o, false);
  };
  const rebuildNamespaced = () => {
    nsIndexes.clear();
    for (const o of roleBindings.list()) indexNamespaced(o, false);
  };
  rebuildCluster();
  rebuildNamespaced();
  const offs = [
    clusterRoleBindings.onChange((ev) => {
      if (ev) indexCluster(ev.obj, ev.type === "DELETED");
      else rebuildCluster();
      notify();
    }),
    roleBindings.onChange((ev) => {
      if (ev) indexNamespaced(ev.obj, ev.type === "DELETED");
      else rebuildNamespaced();
      notify();
    }),
    roles.onChange(notify),
    clusterRoles.onChange(notify),
  ];

  function rulesOf(b: Binding, namespace: string): PolicyRule[] {
    const ref = b.roleRef;
    if (!ref) return [];
    const role =
      ref.kind === "ClusterRole" ? clusterRoles.get(keyFor(clusterRoles.kind, "", ref.name)) : roles.get(keyFor(roles.kind, namespace, ref.name));
    return ((role as { rules?: PolicyRule[] } | undefined)?.rules ?? []);
  }

  function matching(b: Binding, namespace: string, a: RequestAttributes): boolean {
    return rulesOf(b, namespace).some((r) => ruleAllows(r, a));
  }

  return {
    authorize(a: RequestAttributes): Decision {
      if (a.user.groups.includes(SUPERUSER_GROUP)) return { decision: "allow", reason: `RBAC: members of ${SUPERUSER_GROUP} may do anything` };
      const subjects = [`u:${a.user.name}`, ...a.user.groups.map((g) => `g:${g}`)];
      for (const s of subjects) {
        for (const b of clusterIndex.get(s)) {
          if (matching(b, "", a)) return { decision: "allow", reason: `RBAC: allowed by ClusterRoleBinding "${b.metadata?.name}" of ClusterRole "${b.roleRef?.name}" to ${describeSubject(s)}` };
        }
      }
      // RoleBindings grant nothing outside their namespace, and no non-resource URLs.
      const idx = a.path === undefined && a.namespace !== "" ? nsIndexes.get(a.namespace) : undefined;
      if (idx) {
        for (const s of subjects) {
          for (const b of idx.get(s)) {
            if (matching(b, a.namespace, a)) {
              return { decision: "allow", reason: `RBAC: allowed by RoleBinding "${b.metadata?.name}/${a.namespace}" of ${b.roleRef?.kind} "${b.roleRef?.name}" to ${describeSubject(s)}` };
            }
          }
        }
      }
      return { decision: "no-opinion", reason: forbiddenReason(a) };
    },
    rulesFor(user, namespace) {
      if (user.groups.includes(SUPERUSER_GROUP)) return undefined;
      const subjects = [`u:${user.name}`, ...user.groups.map((g) => `g:${g}`)];
      const out: PolicyRule[] = [];
      for (const s of subjects) for (const b of clusterIndex.get(s)) out.push(...rulesOf(b, ""));
      const idx = namespace === "" ? undefined : nsIndexes.get(namespace);
      if (idx) for (const s of subjects) for (const b of idx.get(s)) out.push(...rulesOf(b, namespace));
      return out;
    },
    onPolicyChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      for (const off of offs) off();
      listeners.clear();
    },
  };
}

function describeSubject(key: string): string {
  return key.startsWith("g:") ? `Group "${key.slice(2)}"` : `User "${key.slice(2)}"`;
}
