// Authorization on a real etcd, with the apiserver's own authorizer and watch handler (the
// request pipeline that puts TLS identities in front of them is wired separately):
// - a user bound to `view` in namespace a may get/list/watch pods there, not create them, and
//   nothing in namespace b; a Watch started under the binding ends with PERMISSION_DENIED once
//   the binding is deleted, and delivers nothing after;
// - a node identity may not write another Node or another node's pod status, nor read a Secret
//   no pod of its own uses, and may read its own pods' Secrets;
// - after an apiserver restart the policy is rebuilt from etcd (bindings made before the start
//   count) and the default policy is not written again.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { RoleBindingSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { SecretSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { serviceImpl } from "../../internal/apiserver/service.ts";
import { bootstrapPolicy } from "../../internal/auth/rbac/bootstrap.ts";
import { revocable } from "../../internal/auth/revocation.ts";
import type { RequestAttributes, UserInfo, Verb } from "../../internal/auth/types.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
  for (const name of ["a", "b"]) await cp.client("Namespace").create(create(NamespaceSchema, { metadata: { name } }));
});
afterAll(() => cp?.stop());

const RBAC = "rbac.authorization.k8s.io";
const jane: UserInfo = { name: "jane", groups: ["system:authenticated"] };
const n1: UserInfo = { name: "system:node:n1", groups: ["system:nodes", "system:authenticated"] };
const at = (user: UserInfo, verb: Verb, resource: string, more: Partial<RequestAttributes> = {}): RequestAttributes => ({
  user,
  verb,
  apiGroup: "",
  resource,
  subresource: "",
  namespace: "",
  name: "",
  ...more,
});
const decide = (a: RequestAttributes) => cp.server.authorization.authorizer.authorize(a);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean): Promise<void> {
  for (let i = 0; !f(); i++) {
    if (i > 400) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}
const pod = (name: string, namespace: string, more: object = {}) =>
  create(PodSchema, { metadata: { name, namespace }, spec: { containers: [{ name: "c", image: "busybox" }], ...more } });

describe("RBAC on etcd", () => {
  it("view in a: reads pods in a, cannot create, sees nothing of b; its watch ends when the binding goes", async () => {
    await cp.client("Pod").create(pod("web", "a"));
    await cp.client("Pod").create(pod("db", "b"));
    expect(decide(at(jane, "list", "pods", { namespace: "a" })).decision).toBe("deny");
    await cp.client("RoleBinding").create(
      create(RoleBindingSchema, { metadata: { name: "jane-view", namespace: "a" }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "view" }, subjects: [{ kind: "User", name: "jane" }] }),
    );
    await until("the binding to take effect", () => decide(at(jane, "list", "pods", { namespace: "a" })).decision === "allow");
    expect(decide(at(jane, "get", "pods", { namespace: "a", name: "web" })).decision).toBe("allow");
    expect(decide(at(jane, "watch", "pods", { namespace: "a" })).decision).toBe("allow");
    expect(decide(at(jane, "create", "pods", { namespace: "a" }))).toEqual({ decision: "deny", reason: 'User "jane" cannot create resource "pods" in API group "" in the namespace "a"' });
    for (const verb of ["get", "list", "watch"] as const) expect(decide(at(jane, verb, "pods", { namespace: "b", name: verb === "get" ? "db" : "" })).decision).toBe("deny");
    expect(decide(at(jane, "list", "pods")).decision).toBe("deny");

    // A watch as the pipeline runs it: authorized, then wrapped so that a policy change ends it.
    const attrs = at(jane, "watch", "pods", { namespace: "a" });
    const impl = serviceImpl(cp.server.ops.get("Pod")!, cp.server.caches.get("Pod")!, cp.store, { heartbeatMs: 60_000 });
    const abort = new AbortController();
    const stream = revocable(cp.server.authorization.revoker, attrs, (impl.watch as any)({ namespace: "a", labelSelector: "", fieldSelector: "", resourceVersion: "" }, { signal: abort.signal }));
    const seen: string[] = [];
    let ended: unknown;
    const reading = (async () => {
      try {
        for await (const ev of stream as AsyncIterable<{ pod?: Pod }>) if (ev.pod?.metadata?.name) seen.push(ev.pod.metadata.name);
      } catch (e) {
        ended = e;
      }
    })();
    await until("the initial state", () => seen.includes("web"));
    await cp.client("Pod").create(pod("api", "a"));
    await until("a live event", () => seen.includes("api"));
    await cp.client("RoleBinding").delete("a", "jane-view");
    await until("the binding's removal to take effect", () => decide(attrs).decision === "deny");
    await cp.client("Pod").create(pod("after", "a"));
    await reading;
    abort.abort();
    expect(ended).toBeInstanceOf(ConnectError);
    expect((ended as ConnectError).code).toBe(Code.PermissionDenied);
    expect((ended as ConnectError).rawMessage).toMatch(/^pods is forbidden: User "jane" cannot watch resource "pods" in API group "" in the namespace "a"/);
    expect(seen).toEqual(["web", "api"]);
  });
});

describe("node authorization on etcd", () => {
  it("a node writes only its own objects and reads only its own pods' Secrets", async () => {
    const secrets = cp.client("Secret");
    for (const name of ["n1-secret", "n2-secret"]) await secrets.create(create(SecretSchema, { metadata: { name, namespace: "a" }, data: { k: new Uint8Array([1]) } }));
    await cp.client("Pod").create(pod("on-n1", "a", { nodeName: "n1", imagePullSecrets: [{ name: "n1-secret" }] }));
    await cp.client("Pod").create(pod("on-n2", "a", { nodeName: "n2", imagePullSecrets: [{ name: "n2-secret" }] }));
    const own = at(n1, "get", "secrets", { namespace: "a", name: "n1-secret" });
    await until("the pods in the node graph", () => decide(own).decision === "allow");
    expect(decide(at(n1, "get", "secrets", { namespace: "a", name: "n2-secret" })).decision).toBe("deny");
    expect(decide(at(n1, "update", "nodes", { name: "n2" })).decision).toBe("deny");
    expect(decide(at(n1, "update", "nodes", { name: "n1", subresource: "status" })).decision).toBe("allow");
    expect(decide(at(n1, "update", "pods", { namespace: "a", name: "on-n2", subresource: "status" })).decision).toBe("deny");
    expect(decide(at(n1, "update", "pods", { namespace: "a", name: "on-n1", subresource: "status" })).decision).toBe("allow");
    expect(decide(at(n1, "get", "secrets", { namespace: "a", name: "n2-secret" })).reason).toBe(
      'User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "a": no pod bound to node "n1" uses secrets a/n2-secret',
    );
  });
});

describe("after an apiserver restart", () => {
  it("rebuilds the policy from etcd and writes no default again", async () => {
    await cp.client("RoleBinding").create(
      create(RoleBindingSchema, { metadata: { name: "jane-edit", namespace: "b" }, roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "edit" }, subjects: [{ kind: "User", name: "jane" }] }),
    );
    await cp.restartApiServer();
    // Bindings made before the start count at once: the index is built from the caches' first list.
    expect(decide(at(jane, "create", "pods", { namespace: "b" })).decision).toBe("allow");
    expect(decide(at(n1, "get", "secrets", { namespace: "a", name: "n1-secret" })).decision).toBe("allow");
    expect(await bootstrapPolicy(cp.server.ops)).toMatchObject({ created: [], updated: [] });
  });
});
