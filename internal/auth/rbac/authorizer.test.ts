// RBAC on the apiserver's real watch caches: bindings in one namespace grant nothing in another,
// ClusterRoleBindings grant everywhere, rules follow Kubernetes' wildcard, subresource and
// resourceNames semantics, and a refusal reads like Kubernetes' "forbidden" text.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "../testing.ts";
import type { Authorizer } from "../types.ts";

let api: AuthTestApi;
let authz: Authorizer;
beforeAll(async () => {
  api = await startAuthTestApi();
  authz = api.server.authorization.authorizer;
  await api.namespace("a");
  await api.namespace("b");
});
afterAll(() => api.close());

const ok = (a: Parameters<Authorizer["authorize"]>[0]) => authz.authorize(a).decision === "allow";
const rbac = "rbac.authorization.k8s.io";

describe("RBAC authorizer", () => {
  it("a user bound to view in namespace a reads pods there, cannot write, and sees nothing of b", async () => {
    const jane = user("jane");
    expect(ok(attrs(jane, "list", "pods", { namespace: "a" }))).toBe(false);
    await api.put("RoleBinding", {
      metadata: { name: "jane-view", namespace: "a" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "jane" }],
    });
    for (const verb of ["get", "list", "watch"] as const) expect(ok(attrs(jane, verb, "pods", { namespace: "a", name: verb === "get" ? "web" : "" }))).toBe(true);
    expect(ok(attrs(jane, "get", "pods", { namespace: "a", name: "web", subresource: "log" }))).toBe(true);
    expect(ok(attrs(jane, "create", "pods", { namespace: "a" }))).toBe(false);
    expect(ok(attrs(jane, "get", "secrets", { namespace: "a", name: "s" }))).toBe(false);
    expect(ok(attrs(jane, "list", "pods", { namespace: "b" }))).toBe(false);
    // Across every namespace is cluster scope: a RoleBinding does not reach it.
    expect(ok(attrs(jane, "list", "pods"))).toBe(false);
    const d = authz.authorize(attrs(jane, "create", "pods", { namespace: "a" }));
    expect(d).toEqual({ decision: "deny", reason: 'User "jane" cannot create resource "pods" in API group "" in the namespace "a"' });
    expect(authz.authorize(attrs(jane, "list", "deployments", { apiGroup: "apps" })).reason).toBe(
      'User "jane" cannot list resource "deployments" in API group "apps" at the cluster scope',
    );
  });

  it("a ClusterRoleBinding grants in every namespace and at cluster scope; groups count", async () => {
    const ops = user("ops-1", "ops");
    await api.put("ClusterRoleBinding", {
      metadata: { name: "ops-edit" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "edit" },
      subjects: [{ kind: "Group", apiGroup: rbac, name: "ops" }],
    });
    expect(ok(attrs(ops, "create", "deployments", { apiGroup: "apps", namespace: "b" }))).toBe(true);
    expect(ok(attrs(ops, "list", "pods"))).toBe(true);
    expect(ok(attrs(user("ops-1"), "list", "pods"))).toBe(false); // the same name without the group
    expect(authz.authorize(attrs(ops, "list", "pods")).reason).toMatch(/ClusterRoleBinding "ops-edit" of ClusterRole "edit" to Group "ops"/);
  });

  it("follows Kubernetes' rule semantics: wildcards, subresources, resourceNames", async () => {
    await api.put("Role", {
      metadata: { name: "narrow", namespace: "a" },
      rules: [
        { verbs: ["get", "update"], apiGroups: [""], resources: ["configmaps"], resourceNames: ["app-config"] },
        { verbs: ["update"], apiGroups: ["*"], resources: ["*/status"] },
        { verbs: ["*"], apiGroups: ["apps"], resources: ["deployments"] },
      ],
    });
    await api.put("RoleBinding", {
      metadata: { name: "bob-narrow", namespace: "a" },
      roleRef: { apiGroup: rbac, kind: "Role", name: "narrow" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "bob" }],
    });
    const bob = user("bob");
    const inA = (more: object) => ({ namespace: "a", ...more });
    expect(ok(attrs(bob, "get", "configmaps", inA({ name: "app-config" })))).toBe(true);
    expect(ok(attrs(bob, "get", "configmaps", inA({ name: "other" })))).toBe(false);
    // A rule with resourceNames never matches a request without a name.
    expect(ok(attrs(bob, "list", "configmaps", inA({})))).toBe(false);
    expect(ok(attrs(bob, "update", "pods", inA({ name: "p", subresource: "status" })))).toBe(true);
    expect(ok(attrs(bob, "update", "pods", inA({ name: "p" })))).toBe(false);
    expect(ok(attrs(bob, "delete", "deployments", inA({ apiGroup: "apps", name: "d" })))).toBe(true);
    // "deployments" does not cover its subresources.
    expect(ok(attrs(bob, "get", "deployments", inA({ apiGroup: "apps", name: "d", subresource: "scale" })))).toBe(false);
    // A Role in a grants nothing in b even through a RoleBinding of the same name there.
    await api.put("RoleBinding", {
      metadata: { name: "bob-narrow", namespace: "b" },
      roleRef: { apiGroup: rbac, kind: "Role", name: "narrow" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "bob" }],
    });
    expect(ok(attrs(bob, "delete", "deployments", { apiGroup: "apps", namespace: "b", name: "d" }))).toBe(false);
  });

  it("matches ServiceAccount subjects to their user names; a changed role takes effect at once", async () => {
    await api.put("Role", { metadata: { name: "reader", namespace: "b" }, rules: [{ verbs: ["get"], apiGroups: [""], resources: ["secrets"] }] });
    await api.put("RoleBinding", {
      metadata: { name: "bot", namespace: "b" },
      roleRef: { apiGroup: rbac, kind: "Role", name: "reader" },
      subjects: [{ kind: "ServiceAccount", name: "build-bot" }], // namespace defaults to the binding's
    });
    const bot = user("system:serviceaccount:b:build-bot", "system:serviceaccounts", "system:serviceaccounts:b");
    expect(ok(attrs(bot, "get", "secrets", { namespace: "b", name: "s" }))).toBe(true);
    expect(ok(attrs(user("system:serviceaccount:a:build-bot"), "get", "secrets", { namespace: "b", name: "s" }))).toBe(false);
    await api.put("Role", { metadata: { name: "reader", namespace: "b" }, rules: [{ verbs: ["get"], apiGroups: [""], resources: ["configmaps"] }] });
    expect(ok(attrs(bot, "get", "secrets", { namespace: "b", name: "s" }))).toBe(false);
    expect(ok(attrs(bot, "get", "configmaps", { namespace: "b", name: "c" }))).toBe(true);
  });

  it("grants non-resource URLs through ClusterRoles only", async () => {
    await api.put("ClusterRole", { metadata: { name: "metrics-reader" }, rules: [{ verbs: ["get"], nonResourceUrls: ["/metrics", "/debug/*"] }] });
    await api.put("ClusterRoleBinding", {
      metadata: { name: "prom" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "metrics-reader" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "prometheus" }],
    });
    const prom = user("prometheus");
    expect(ok(attrs(prom, "get", "", { path: "/metrics" }))).toBe(true);
    expect(ok(attrs(prom, "get", "", { path: "/debug/pprof" }))).toBe(true);
    expect(ok(attrs(prom, "get", "", { path: "/healthz/etcd" }))).toBe(false);
    expect(authz.authorize(attrs(prom, "get", "", { path: "/readyz" })).reason).toBe('User "prometheus" cannot get path "/readyz"');
  });
});
