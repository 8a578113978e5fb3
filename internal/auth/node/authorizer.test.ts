// The node authorizer and node restriction with a node's identity, on the apiserver's real pod
// cache: an agent reads only what its own pods use, writes only its own Node, Lease and pod
// statuses, and lists pods only with its own spec.nodeName selector; binding a pod to it opens
// that pod's Secret, deleting the pod closes it again.
import { ConnectError, Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeSchema } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "../testing.ts";
import type { RequestAttributes } from "../types.ts";
import { admitNodeRestriction, RESTRICTED_LABEL_PREFIX } from "./restriction.ts";

let api: AuthTestApi;
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("a");
});
afterAll(() => api.close());

const n1 = user("system:node:n1", "system:nodes");
const decide = (a: RequestAttributes) => api.server.authorization.authorizer.authorize(a);
const ok = (a: RequestAttributes) => decide(a).decision === "allow";

function pod(name: string, nodeName: string, secret: string, configMap: string) {
  return {
    metadata: { name, namespace: "a" },
    spec: {
      nodeName,
      containers: [{ name: "c", image: "busybox", env: [{ name: "X", valueFrom: { configMapKeyRef: { name: configMap, key: "k" } } }] }],
      volumes: [{ name: "s", secret: { secretName: secret } }],
      imagePullSecrets: [{ name: "regcred" }],
    },
  };
}

describe("node authorizer", () => {
  it("lets a node read the Secrets and ConfigMaps its pods use, and no others", async () => {
    await api.put("Pod", pod("web", "n1", "web-tls", "web-config"));
    await api.put("Pod", pod("db", "n2", "db-password", "db-config"));
    const get = (resource: string, name: string) => attrs(n1, "get", resource, { namespace: "a", name });
    expect(ok(get("secrets", "web-tls"))).toBe(true);
    expect(ok(get("secrets", "regcred"))).toBe(true);
    expect(ok(get("configmaps", "web-config"))).toBe(true);
    expect(ok(get("secrets", "db-password"))).toBe(false);
    expect(ok(get("configmaps", "db-config"))).toBe(false);
    expect(ok(attrs(n1, "list", "secrets", { namespace: "a" }))).toBe(false);
    expect(decide(get("secrets", "db-password"))).toEqual({
      decision: "deny",
      reason: 'User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "a": no pod bound to node "n1" uses secrets a/db-password',
    });
    // Another node sees the other set.
    expect(ok(attrs(user("system:node:n2", "system:nodes"), "get", "secrets", { namespace: "a", name: "db-password" }))).toBe(true);
  });

  it("follows the pods: a pod bound later opens its Secret, its deletion closes it", async () => {
    const get = attrs(n1, "get", "secrets", { namespace: "a", name: "late-secret" });
    expect(ok(get)).toBe(false);
    await api.put("Pod", pod("late", "n1", "late-secret", "late-config"));
    expect(ok(get)).toBe(true);
    await api.server.ops.get("Pod")!.delete("a", "late", { gracePeriodSeconds: 0n } as never);
    await api.put("Pod", pod("marker", "n3", "m", "m")); // the cache has seen everything before this
    expect(ok(get)).toBe(false);
  });

  it("lets a node see and report only its own pods", () => {
    expect(ok(attrs(n1, "watch", "pods", { fieldSelector: "spec.nodeName=n1" }))).toBe(true);
    expect(ok(attrs(n1, "list", "pods", { fieldSelector: "spec.nodeName=n1,status.phase=Running" }))).toBe(true);
    expect(ok(attrs(n1, "watch", "pods"))).toBe(false);
    expect(ok(attrs(n1, "list", "pods", { fieldSelector: "spec.nodeName=n2" }))).toBe(false);
    expect(ok(attrs(n1, "update", "pods", { namespace: "a", name: "web", subresource: "status" }))).toBe(true);
    expect(ok(attrs(n1, "update", "pods", { namespace: "a", name: "db", subresource: "status" }))).toBe(false);
    expect(ok(attrs(n1, "delete", "pods", { namespace: "a", name: "web" }))).toBe(true);
    expect(ok(attrs(n1, "update", "pods", { namespace: "a", name: "web" }))).toBe(false);
    expect(ok(attrs(n1, "create", "pods", { namespace: "a" }))).toBe(false);
    // A pod that no longer exists: through to NOT_FOUND, which tells the agent it is gone.
    expect(ok(attrs(n1, "delete", "pods", { namespace: "a", name: "gone" }))).toBe(true);
    expect(ok(attrs(n1, "update", "pods", { namespace: "a", name: "gone", subresource: "status" }))).toBe(true);
    expect(ok(attrs(n1, "update", "pods", { namespace: "a", name: "gone" }))).toBe(false);
  });

  it("lets a node write its own Node and Lease only; RBAC's system:node role gives the shared reads", () => {
    expect(ok(attrs(n1, "update", "nodes", { name: "n1", subresource: "status" }))).toBe(true);
    expect(ok(attrs(n1, "update", "nodes", { name: "n1" }))).toBe(true);
    expect(ok(attrs(n1, "update", "nodes", { name: "n2", subresource: "status" }))).toBe(false);
    expect(ok(attrs(n1, "delete", "nodes", { name: "n1" }))).toBe(false);
    const lease = (name: string, namespace = "skiff-system") => attrs(n1, "update", "leases", { apiGroup: "coordination.k8s.io", namespace, name });
    expect(ok(lease("n1"))).toBe(true);
    expect(ok(lease("n2"))).toBe(false);
    expect(ok(lease("skiff-scheduler"))).toBe(false);
    expect(ok(lease("n1", "default"))).toBe(false);
    for (const r of ["nodes", "services", "endpoints"]) expect(ok(attrs(n1, "watch", r))).toBe(true);
    expect(ok(attrs(n1, "create", "events", { namespace: "a" }))).toBe(true);
    expect(ok(attrs(n1, "list", "deployments", { apiGroup: "apps" }))).toBe(false);
  });

  it("allows only: what an operator grants nodes through RBAC on purpose adds to it", async () => {
    const n4 = user("system:node:n4", "system:nodes");
    const listAll = attrs(n4, "list", "pods", { namespace: "a" });
    expect(ok(listAll)).toBe(false);
    await api.put("RoleBinding", {
      metadata: { name: "n4-view", namespace: "a" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "system:node:n4" }],
    });
    expect(ok(listAll)).toBe(true);
    expect(ok(attrs(n4, "get", "secrets", { namespace: "a", name: "web-tls" }))).toBe(false);
  });

  it("does not apply to users that only look like nodes", () => {
    // Not in system:nodes: RBAC alone decides, and grants nothing.
    expect(ok(attrs(user("system:node:n1"), "get", "secrets", { namespace: "a", name: "web-tls" }))).toBe(false);
    expect(ok(attrs(user("system:node:n1"), "update", "nodes", { name: "n1" }))).toBe(false);
  });
});

describe("node restriction", () => {
  const node = (name: string, labels: Record<string, string> = {}, taints: { key: string; effect: string }[] = []) =>
    create(NodeSchema, { metadata: { name, labels }, spec: { taints } });
  const refused = (f: () => void) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(ConnectError);
      expect((e as ConnectError).code).toBe(Code.PermissionDenied);
      return (e as ConnectError).rawMessage;
    }
    throw new Error("not refused");
  };

  it("lets a node create only itself, keep off restricted labels and leave its taints alone", () => {
    expect(() => admitNodeRestriction({ user: n1, kind: "Node", operation: "create", object: node("n1", { "kubernetes.io/hostname": "n1" }) })).not.toThrow();
    expect(refused(() => admitNodeRestriction({ user: n1, kind: "Node", operation: "create", object: node("n2") }))).toMatch(/node "n1" is not allowed to create Node "n2"/);
    const label = `${RESTRICTED_LABEL_PREFIX}trusted`;
    expect(refused(() => admitNodeRestriction({ user: n1, kind: "Node", operation: "update", oldObject: node("n1"), object: node("n1", { [label]: "yes" }) }))).toContain(label);
    expect(refused(() => admitNodeRestriction({ user: n1, kind: "Node", operation: "update", oldObject: node("n1", { [label]: "yes" }), object: node("n1") }))).toContain(label);
    expect(
      refused(() => admitNodeRestriction({ user: n1, kind: "Node", operation: "update", oldObject: node("n1", {}, [{ key: "k", effect: "NoSchedule" }]), object: node("n1") })),
    ).toMatch(/spec.taints/);
    // The operator (not a node) may do all of it.
    expect(() => admitNodeRestriction({ user: user("admin", "system:masters"), kind: "Node", operation: "update", oldObject: node("n1"), object: node("n1", { [label]: "yes" }) })).not.toThrow();
  });

  it("lets a node create only the Lease named after it", () => {
    const lease = (name: string) => ({ metadata: { name, namespace: "skiff-system" } }) as never;
    expect(() => admitNodeRestriction({ user: n1, kind: "Lease", operation: "create", object: lease("n1") })).not.toThrow();
    expect(refused(() => admitNodeRestriction({ user: n1, kind: "Lease", operation: "create", object: lease("skiff-scheduler") }))).toMatch(/Lease "skiff-scheduler"/);
  });
});

describe("node authorizer: persistent volumes", () => {
  const pinned = (node: string) => ({ required: { nodeSelectorTerms: [{ matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] }] } });
  const volume = (name: string, node: string, claim?: string) => ({
    metadata: { name },
    spec: { capacity: { storage: "1Gi" }, accessModes: ["ReadWriteOnce"], hostPath: { path: `/srv/${name}` }, nodeAffinity: pinned(node), claimRef: claim ? { namespace: "a", name: claim } : undefined },
  });

  it("lets a node read the volume of a claim its pod uses, and watch, read and update the volumes pinned to it", async () => {
    await api.put("PersistentVolume", volume("mine", "n1"));
    await api.put("PersistentVolume", volume("theirs", "n2", "shared-data"));
    await api.put("PersistentVolume", volume("unused", "n2", "nobody"));
    await api.put("Pod", { metadata: { name: "uses-claim", namespace: "a" }, spec: { nodeName: "n1", containers: [{ name: "c", image: "busybox" }], volumes: [{ name: "d", persistentVolumeClaim: { claimName: "shared-data" } }] } });
    const on = (verb: "get" | "update", name: string) => ok(attrs(n1, verb, "persistentvolumes", { name }));
    expect(on("get", "mine")).toBe(true);
    expect(on("update", "mine")).toBe(true);
    expect(on("get", "theirs")).toBe(true); // its pod's claim is bound to it
    expect(on("update", "theirs")).toBe(false);
    expect(on("get", "unused")).toBe(false);
    expect(ok(attrs(n1, "watch", "persistentvolumes", { fieldSelector: "spec.nodeAffinity.nodeName=n1" }))).toBe(true);
    expect(ok(attrs(n1, "watch", "persistentvolumes", { fieldSelector: "spec.nodeAffinity.nodeName=n2" }))).toBe(false);
    expect(ok(attrs(n1, "list", "persistentvolumes"))).toBe(false);
  });

  it("lets a node only remove finalizers of a volume", () => {
    const pv = (finalizers: string[], path = "/srv/v") => ({ metadata: { name: "v", finalizers }, spec: { hostPath: { path } } }) as never;
    expect(() => admitNodeRestriction({ user: n1, kind: "PersistentVolume", operation: "update", oldObject: pv(["a", "b"]), object: pv(["a"]) })).not.toThrow();
    expect(() => admitNodeRestriction({ user: n1, kind: "PersistentVolume", operation: "update", oldObject: pv(["a"]), object: pv(["a"], "/etc") })).toThrow(/beyond removing its finalizers/);
    expect(() => admitNodeRestriction({ user: n1, kind: "PersistentVolume", operation: "update", oldObject: pv([]), object: pv(["x"]) })).toThrow(/beyond removing its finalizers/);
    expect(() => admitNodeRestriction({ user: n1, kind: "PersistentVolume", operation: "create", object: pv([]) })).toThrow(/create PersistentVolume/);
  });
});
