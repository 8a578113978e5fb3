// The default policy as the apiserver creates it: each component may do what its code calls and
// no more, every authenticated user may review its own access, system:masters may do anything;
// and reconciling at start restores a removed default rule but leaves an opted-out role alone.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterRole } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "../testing.ts";
import type { RequestAttributes } from "../types.ts";
import { bootstrapPolicy } from "./bootstrap.ts";
import { AUTOUPDATE_ANNOTATION } from "./policy.ts";

let api: AuthTestApi;
beforeAll(async () => {
  api = await startAuthTestApi();
});
afterAll(() => api.close());

const ok = (a: RequestAttributes) => api.server.authorization.authorizer.authorize(a).decision === "allow";

describe("default policy", () => {
  it("lets system:masters do anything, and nobody else by default", () => {
    const admin = user("admin", "system:masters");
    expect(ok(attrs(admin, "delete", "clusterrolebindings", { apiGroup: "rbac.authorization.k8s.io", name: "x" }))).toBe(true);
    expect(ok(attrs(admin, "get", "", { path: "/metrics" }))).toBe(true);
    expect(ok(attrs(user("mallory"), "get", "pods", { namespace: "default", name: "p" }))).toBe(false);
  });

  it("gives the scheduler what it calls: read pods and nodes, bind, pod status, events, its lease", () => {
    const s = user("system:kube-scheduler");
    expect(ok(attrs(s, "watch", "pods"))).toBe(true);
    expect(ok(attrs(s, "list", "nodes"))).toBe(true);
    expect(ok(attrs(s, "create", "pods", { namespace: "default", name: "p", subresource: "binding" }))).toBe(true);
    expect(ok(attrs(s, "update", "pods", { namespace: "default", name: "p", subresource: "status" }))).toBe(true);
    expect(ok(attrs(s, "create", "events", { namespace: "default" }))).toBe(true);
    expect(ok(attrs(s, "update", "leases", { apiGroup: "coordination.k8s.io", namespace: "skiff-system", name: "skiff-scheduler" }))).toBe(true);
    // … and nothing else.
    expect(ok(attrs(s, "update", "leases", { apiGroup: "coordination.k8s.io", namespace: "skiff-system", name: "skiff-controller-manager" }))).toBe(false);
    expect(ok(attrs(s, "get", "secrets", { namespace: "default", name: "db" }))).toBe(false);
    expect(ok(attrs(s, "update", "pods", { namespace: "default", name: "p" }))).toBe(false);
    expect(ok(attrs(s, "delete", "pods", { namespace: "default", name: "p" }))).toBe(false);
  });

  it("gives the controller-manager every kind to collect garbage, but no logs, bindings or RBAC creation", () => {
    const c = user("system:kube-controller-manager");
    expect(ok(attrs(c, "create", "pods", { namespace: "default" }))).toBe(true);
    expect(ok(attrs(c, "create", "replicasets", { apiGroup: "apps", namespace: "default" }))).toBe(true);
    expect(ok(attrs(c, "update", "deployments", { apiGroup: "apps", namespace: "default", name: "d", subresource: "status" }))).toBe(true);
    expect(ok(attrs(c, "update", "nodes", { name: "n", subresource: "status" }))).toBe(true);
    expect(ok(attrs(c, "delete", "pods", { namespace: "default", name: "p" }))).toBe(true);
    // The garbage collector watches every kind in the registry, RBAC's included.
    expect(ok(attrs(c, "watch", "rolebindings", { apiGroup: "rbac.authorization.k8s.io" }))).toBe(true);
    expect(ok(attrs(c, "get", "pods", { namespace: "default", name: "p", subresource: "log" }))).toBe(false);
    expect(ok(attrs(c, "create", "pods", { namespace: "default", name: "p", subresource: "binding" }))).toBe(false);
    expect(ok(attrs(c, "create", "clusterrolebindings", { apiGroup: "rbac.authorization.k8s.io" }))).toBe(false);
    expect(ok(attrs(c, "create", "secrets", { namespace: "default" }))).toBe(false);
  });

  it("lets every authenticated user review its own access, and only that", () => {
    const u = user("jane");
    expect(ok(attrs(u, "create", "selfsubjectaccessreviews", { apiGroup: "authorization.k8s.io" }))).toBe(true);
    expect(ok(attrs(u, "create", "selfsubjectreviews", { apiGroup: "authentication.k8s.io" }))).toBe(true);
    expect(ok(attrs(u, "create", "subjectaccessreviews", { apiGroup: "authorization.k8s.io" }))).toBe(false);
  });

  it("restores a default rule someone removed, keeps added ones, and respects autoupdate=false", async () => {
    const ops = api.server.ops.get("ClusterRole")!;
    const view = (await ops.get("", "view")) as ClusterRole;
    const defaults = view.rules.length;
    await api.put("ClusterRole", {
      metadata: { name: "view", labels: view.metadata!.labels, annotations: view.metadata!.annotations },
      rules: [...view.rules.slice(1), { verbs: ["get"], apiGroups: [""], resources: ["nodes"] }],
    });
    const r = await bootstrapPolicy(api.server.ops);
    expect(r.updated).toEqual(["ClusterRole/view"]);
    const after = (await ops.get("", "view")) as ClusterRole;
    expect(after.rules.length).toBe(defaults + 1);
    expect(after.rules.some((x) => x.resources.includes("nodes"))).toBe(true);

    await api.put("ClusterRole", { metadata: { name: "edit", annotations: { [AUTOUPDATE_ANNOTATION]: "false" } }, rules: [{ verbs: ["get"], apiGroups: [""], resources: ["pods"] }] });
    expect((await bootstrapPolicy(api.server.ops)).updated).toEqual([]);
    expect(((await ops.get("", "edit")) as ClusterRole).rules).toHaveLength(1);
    await api.remove("ClusterRoleBinding", "", "system:basic-user");
    expect((await bootstrapPolicy(api.server.ops)).created).toEqual(["ClusterRoleBinding/system:basic-user"]);
  });
});
