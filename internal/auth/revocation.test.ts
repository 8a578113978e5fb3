// Watch revocation: a watch allowed when it started ends with PERMISSION_DENIED once the binding
// that allowed it is deleted, while a watch the caller may still make stays open.
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "./testing.ts";

let api: AuthTestApi;
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("a");
});
afterAll(() => api.close());

const rbac = "rbac.authorization.k8s.io";

describe("access revoker", () => {
  it("ends the watches of a user whose binding was removed, and only those", async () => {
    const { authorizer, revoker } = api.server.authorization;
    const jane = user("jane");
    await api.put("RoleBinding", {
      metadata: { name: "jane-view", namespace: "a" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "jane" }],
    });
    await api.put("RoleBinding", {
      metadata: { name: "joe-view", namespace: "a" },
      roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: rbac, name: "joe" }],
    });
    const janeWatch = attrs(jane, "watch", "pods", { namespace: "a" });
    const joeWatch = attrs(user("joe"), "watch", "pods", { namespace: "a" });
    expect(authorizer.authorize(janeWatch).decision).toBe("allow");
    const ended: { who: string; err: ConnectError }[] = [];
    let janeEnded!: () => void;
    const janeDone = new Promise<void>((r) => (janeEnded = r));
    revoker.track(janeWatch, (err) => {
      ended.push({ who: "jane", err });
      janeEnded();
    });
    const untrackJoe = revoker.track(joeWatch, (err) => ended.push({ who: "joe", err }));
    expect(revoker.size()).toBe(2);

    await api.remove("RoleBinding", "a", "jane-view");
    await janeDone;
    expect(ended.map((e) => e.who)).toEqual(["jane"]);
    expect(ended[0].err.code).toBe(Code.PermissionDenied);
    expect(ended[0].err.rawMessage).toBe(
      'pods is forbidden: User "jane" cannot watch resource "pods" in API group "" in the namespace "a" (access was revoked while the watch was open)',
    );
    expect(revoker.size()).toBe(1);
    untrackJoe();
    expect(revoker.size()).toBe(0);
  });
});
