// Scoped re-checks: a pod bound to (or deleted from) a node re-checks only that node's open
// requests and those naming the pod, so 500 nodes' watches are not re-authorized on every
// binding; an RBAC change still re-checks every one. Access lost is still ended at once.
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccessRevoker } from "./revocation.ts";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "./testing.ts";
import type { Authorizer, PolicyChangeScope, PolicySource, RequestAttributes } from "./types.ts";

/** An authorizer that allows what `allowed` holds and counts its checks per user. */
function fakeAuthorizer() {
  const allowed = new Set<string>();
  const checks = new Map<string, number>();
  let emit: (scope?: PolicyChangeScope) => void = () => {};
  const key = (a: RequestAttributes) => `${a.user.name} ${a.verb} ${a.resource} ${a.name}`;
  const authorizer: Authorizer & PolicySource = {
    authorize(a) {
      checks.set(a.user.name, (checks.get(a.user.name) ?? 0) + 1);
      return allowed.has(key(a)) ? { decision: "allow", reason: "" } : { decision: "no-opinion", reason: "not in the test's list" };
    },
    onPolicyChange(l) {
      emit = l;
      return () => (emit = () => {});
    },
  };
  return { authorizer, allowed, checks, key, change: (scope?: PolicyChangeScope) => emit(scope) };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("scoped policy changes", () => {
  it("re-check only the watches of the users and the object a change names, and end those refused", async () => {
    const f = fakeAuthorizer();
    const revoker = createAccessRevoker(f.authorizer, { coalesceMs: 1 });
    const n1 = attrs(user("system:node:n1", "system:nodes"), "watch", "pods");
    const n2 = attrs(user("system:node:n2", "system:nodes"), "watch", "pods");
    const log = attrs(user("jane"), "get", "pods", { subresource: "log", namespace: "a", name: "web" });
    for (const a of [n1, n2, log]) f.allowed.add(f.key(a));
    const ended: string[] = [];
    for (const a of [n1, n2, log]) revoker.track(a, (err) => ended.push(`${a.user.name}: ${Code[err.code]}`));
    const seen = revoker.generation();

    f.allowed.delete(f.key(n1));
    f.allowed.delete(f.key(log));
    f.change({ users: ["system:node:n1"], object: { resource: "pods", namespace: "a", name: "web" } });
    expect(revoker.changedSince(n1, seen)).toBe(true);
    expect(revoker.changedSince(log, seen)).toBe(true);
    expect(revoker.changedSince(n2, seen)).toBe(false);
    while (ended.length < 2) await tick(5);
    expect(ended.sort()).toEqual(["jane: PermissionDenied", "system:node:n1: PermissionDenied"]);
    expect(f.checks.get("system:node:n2")).toBeUndefined();
    expect(revoker.size()).toBe(1);

    // A change with no scope (RBAC) concerns everyone.
    const before = revoker.generation();
    f.allowed.delete(f.key(n2));
    f.change();
    expect(revoker.changedSince(n2, before)).toBe(true);
    while (ended.length < 3) await tick(5);
    expect(ended[2]).toBe("system:node:n2: PermissionDenied");
    expect(revoker.size()).toBe(0);
    revoker.close();
  });

  it("remember nothing for users without open watches", () => {
    const f = fakeAuthorizer();
    const revoker = createAccessRevoker(f.authorizer, { coalesceMs: 1 });
    f.change({ users: ["system:node:gone"] });
    const n = attrs(user("system:node:gone", "system:nodes"), "watch", "pods");
    f.allowed.add(f.key(n));
    revoker.track(n, () => {});
    // Tracked after the change: nothing to re-check for it.
    expect(revoker.changedSince(n, revoker.generation())).toBe(false);
    revoker.close();
  });
});

describe("scoped policy changes from the node graph", () => {
  let api: AuthTestApi;
  beforeAll(async () => {
    api = await startAuthTestApi();
    await api.namespace("a");
  });
  afterAll(() => api.close());

  it("a pod deleted from n1 ends n1's access to its Secret without re-checking n2", async () => {
    const pod = (name: string, nodeName: string, secret: string) => ({
      metadata: { name, namespace: "a" },
      spec: { nodeName, containers: [{ name: "c", image: "busybox" }], volumes: [{ name: "s", secret: { secretName: secret } }] },
    });
    await api.put("Pod", pod("web", "n1", "web-tls"));
    await api.put("Pod", pod("db", "n2", "db-password"));
    const real = api.server.authorization.authorizer;
    const checks = new Map<string, number>();
    const counting: Authorizer & PolicySource = {
      authorize(a) {
        checks.set(a.user.name, (checks.get(a.user.name) ?? 0) + 1);
        return real.authorize(a);
      },
      onPolicyChange: (l) => real.onPolicyChange(l),
    };
    const revoker = createAccessRevoker(counting, { coalesceMs: 1 });
    const n1 = attrs(user("system:node:n1", "system:nodes"), "get", "secrets", { namespace: "a", name: "web-tls" });
    const n2 = attrs(user("system:node:n2", "system:nodes"), "get", "secrets", { namespace: "a", name: "db-password" });
    expect(real.authorize(n1).decision).toBe("allow");
    expect(real.authorize(n2).decision).toBe("allow");
    let ended!: (err: ConnectError) => void;
    const n1Ended = new Promise<ConnectError>((r) => (ended = r));
    revoker.track(n1, ended);
    revoker.track(n2, () => expect.fail("n2 still uses db-password"));
    checks.clear();

    await api.server.ops.get("Pod")!.delete("a", "web", { gracePeriodSeconds: 0n } as never);
    const err = await n1Ended;
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("access was revoked while the watch was open");
    expect(checks.get("system:node:n2")).toBeUndefined();
    expect(revoker.size()).toBe(1);
    revoker.close();
  });
});
