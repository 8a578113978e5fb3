// Escalation prevention: a namespace admin may write roles and bindings in its namespace only
// up to what it holds there; the bind and escalate verbs lift that, system:masters is exempt.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterRoleBindingSchema, RoleBindingSchema, RoleSchema } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import { startAuthTestApi, user, type AuthTestApi } from "../testing.ts";

let api: AuthTestApi;
const rbac = "rbac.authorization.k8s.io";
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("a");
  await api.put("RoleBinding", {
    metadata: { name: "ann-admin", namespace: "a" },
    roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "admin" },
    subjects: [{ kind: "User", apiGroup: rbac, name: "ann" }],
  });
});
afterAll(() => api.close());

const ann = user("ann");
const admit = (kind: string, object: ApiObject, who = ann) => api.server.authorization.admit({ user: who, kind, operation: "create", object });
const role = (rules: object[], namespace = "a") => create(RoleSchema, { metadata: { name: "r", namespace }, rules }) as ApiObject;
const binding = (roleKind: string, name: string) =>
  create(RoleBindingSchema, { metadata: { name: "b", namespace: "a" }, roleRef: { apiGroup: rbac, kind: roleKind, name }, subjects: [{ kind: "User", apiGroup: rbac, name: "eve" }] }) as ApiObject;
function refusal(f: () => void): string {
  try {
    f();
  } catch (e) {
    expect((e as ConnectError).code).toBe(Code.PermissionDenied);
    return (e as ConnectError).rawMessage;
  }
  throw new Error("allowed");
}

describe("RBAC escalation check", () => {
  it("lets a namespace admin grant what it holds there, and nothing more", () => {
    expect(() => admit("Role", role([{ verbs: ["get", "list"], apiGroups: [""], resources: ["pods", "secrets"] }]))).not.toThrow();
    expect(() => admit("RoleBinding", binding("ClusterRole", "view"))).not.toThrow();
    expect(() => admit("RoleBinding", binding("ClusterRole", "edit"))).not.toThrow();
    expect(refusal(() => admit("Role", role([{ verbs: ["*"], apiGroups: ["*"], resources: ["*"] }])))).toBe(
      'role "r" is forbidden: user "ann" may not grant permissions it does not hold in namespace "a": * *.* (or needs the escalate verb on roles)',
    );
    expect(refusal(() => admit("Role", role([{ verbs: ["update"], apiGroups: [""], resources: ["nodes"] }])))).toContain("update nodes");
    expect(refusal(() => admit("RoleBinding", binding("ClusterRole", "cluster-admin")))).toContain('or needs the bind verb on clusterroles "cluster-admin"');
    // Nothing held cluster-wide: no ClusterRoleBinding, not even to view.
    const crb = create(ClusterRoleBindingSchema, { metadata: { name: "ann-view" }, roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "view" }, subjects: [{ kind: "User", apiGroup: rbac, name: "ann" }] });
    expect(refusal(() => admit("ClusterRoleBinding", crb as ApiObject))).toContain("cluster-wide");
  });

  it("lets the bind verb bind exactly the roles it names, and exempts system:masters", async () => {
    await api.put("ClusterRole", { metadata: { name: "binder" }, rules: [{ verbs: ["bind"], apiGroups: [rbac], resources: ["clusterroles"], resourceNames: ["cluster-admin"] }] });
    await api.put("RoleBinding", {
      metadata: { name: "ann-binder", namespace: "a" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "binder" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "ann" }],
    });
    expect(() => admit("RoleBinding", binding("ClusterRole", "cluster-admin"))).not.toThrow();
    expect(refusal(() => admit("RoleBinding", binding("ClusterRole", "system:kube-scheduler")))).toMatch(/may not grant permissions it does not hold in namespace "a": get nodes, .*needs the bind verb on clusterroles "system:kube-scheduler"/);
    expect(() => admit("Role", role([{ verbs: ["*"], apiGroups: ["*"], resources: ["*"] }]), user("root", "system:masters"))).not.toThrow();
  });
});
