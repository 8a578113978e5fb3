// Kubernetes RBAC manifests (rbac.authorization.k8s.io/v1) apply unchanged through skiffctl
// apply, are validated like Kubernetes validates them (every bad field named), and a binding's
// roleRef cannot be changed.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterRole, RoleBinding } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
const dir = mkdtempSync(join(tmpdir(), "skiffctl-rbac-"));
beforeAll(async () => {
  api = await startCliTestApi();
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const kubernetesManifests = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: pod-and-metrics-reader
rules:
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get", "watch", "list"]
- nonResourceURLs: ["/metrics", "/healthz/*"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: configmap-updater
  namespace: default
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["my-configmap"]
  verbs: ["update", "get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: default
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
- kind: ServiceAccount
  name: build-bot
roleRef:
  kind: ClusterRole
  name: pod-and-metrics-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: read-pods-global
subjects:
- kind: Group
  name: manager
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: pod-and-metrics-reader
  apiGroup: rbac.authorization.k8s.io
`;

describe("RBAC manifests", () => {
  it("apply unchanged and read back with Kubernetes' field names", async () => {
    const r = await api.run(["apply", "-f", file("rbac.yaml", kubernetesManifests)]);
    expect(r).toMatchObject({ code: 0, err: "" });
    expect(r.out).toContain("clusterrole.rbac.authorization.k8s.io/pod-and-metrics-reader created");
    const role = await api.client<ClusterRole>("ClusterRole").get("", "pod-and-metrics-reader");
    expect(role.rules[1].nonResourceUrls).toEqual(["/metrics", "/healthz/*"]);
    const rb = await api.client<RoleBinding>("RoleBinding").get("default", "read-pods");
    // The ServiceAccount's namespace defaults to the binding's.
    expect(rb.subjects[1]).toMatchObject({ kind: "ServiceAccount", name: "build-bot", namespace: "default", apiGroup: "" });
    const yaml = await api.run(["get", "clusterrole", "pod-and-metrics-reader", "-o", "yaml"]);
    expect(yaml.out).toContain("nonResourceURLs:");
    expect((await api.run(["get", "rolebindings"])).out).toMatch(/^NAME +ROLE +AGE\nread-pods +ClusterRole\/pod-and-metrics-reader +\d+s\n$/);
    expect((await api.run(["get", "clusterrolebinding", "read-pods-global", "-o", "wide"])).out).toMatch(/USERS\s+GROUPS\s+SERVICEACCOUNTS\n.*\s+manager\s*\n$/);
  });

  it("are refused with every bad field named", async () => {
    const bad = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bad, namespace: default}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "read"]
- resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  nonResourceURLs: ["/metrics"]
  verbs: ["get"]
`;
    const r = await api.run(["apply", "-f", file("bad.yaml", bad)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('rules[0].verbs[1]: unknown verb "read"');
    expect(r.err).toContain("rules[1].apiGroups: required with resources");
    expect(r.err).toContain("rules[2].nonResourceURLs: only a ClusterRole may name non-resource URLs");
    const binding = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bad-binding}
subjects: [{kind: ServiceAccount, name: bot}, {kind: Robot, name: r2}]
roleRef: {kind: Role, name: x, apiGroup: rbac.authorization.k8s.io}
`;
    const b = await api.run(["apply", "-f", file("bad-binding.yaml", binding)]);
    expect(b.err).toContain('roleRef.kind: must be ClusterRole, got "Role"');
    expect(b.err).toContain("subjects[0].namespace: required for a ServiceAccount");
    expect(b.err).toContain('subjects[1].kind: must be User, Group or ServiceAccount, got "Robot"');
    const aggregated = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}}]
rules: []
`;
    expect((await api.run(["apply", "-f", file("agg.yaml", aggregated)])).err).toContain("aggregationRule: not supported: list the rules in the ClusterRole itself");
  });

  it("keep a binding's roleRef: changing it is refused", async () => {
    await api.run(["apply", "-f", file("rbac.yaml", kubernetesManifests)]);
    const changed = kubernetesManifests.replace(/roleRef:\n {2}kind: ClusterRole\n {2}name: pod-and-metrics-reader/, "roleRef:\n  kind: ClusterRole\n  name: view");
    const r = await api.run(["apply", "-f", file("changed.yaml", changed)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('roleRef: field is immutable (is ClusterRole "pod-and-metrics-reader")');
  });
});
