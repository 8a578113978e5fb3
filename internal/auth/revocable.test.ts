// A real Watch stream (the apiserver's own watch handler over its watch cache) wrapped by
// revocable(): it delivers pod events while the caller is bound to `view`, and ends with
// PERMISSION_DENIED once the binding is deleted, delivering nothing after. A long-lived stream
// keeps none of the messages it already delivered.
import { create } from "@bufbuild/protobuf";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { serviceImpl } from "../apiserver/service.ts";
import { revocable, type AccessRevoker } from "./revocation.ts";
import { attrs, startAuthTestApi, user, type AuthTestApi } from "./testing.ts";

let api: AuthTestApi;
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("a");
});
afterAll(() => api.close());

describe("revocable watch", () => {
  it("ends a running pod watch when the caller's binding goes", async () => {
    const { server } = api;
    await api.put("RoleBinding", {
      metadata: { name: "jane-view", namespace: "a" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "jane" }],
    });
    const a = attrs(user("jane"), "watch", "pods", { namespace: "a" });
    expect(server.authorization.authorizer.authorize(a).decision).toBe("allow");
    const impl = serviceImpl(server.ops.get("Pod")!, server.caches.get("Pod")!, undefined as never, { heartbeatMs: 60_000 });
    const abort = new AbortController();
    const stream = revocable(server.authorization.revoker, a, (impl.watch as any)({ namespace: "a", labelSelector: "", fieldSelector: "", resourceVersion: "" }, { signal: abort.signal }));
    const seen: string[] = [];
    const pod = (name: string) => create(PodSchema, { metadata: { name, namespace: "a" }, spec: { containers: [{ name: "c", image: "busybox" }] } });
    let failure: unknown;
    const reading = (async () => {
      try {
        for await (const ev of stream as AsyncIterable<any>) {
          if (ev.pod?.metadata?.name) seen.push(ev.pod.metadata.name);
          if (seen.includes("before")) {
            if (seen.length === 1) await api.remove("RoleBinding", "a", "jane-view").then(() => api.put("Pod", pod("after")));
          }
        }
      } catch (e) {
        failure = e;
      }
    })();
    await api.put("Pod", pod("before"));
    await reading;
    abort.abort();
    expect(failure).toBeInstanceOf(ConnectError);
    expect((failure as ConnectError).code).toBe(Code.PermissionDenied);
    expect(seen).toEqual(["before"]);
    expect(server.authorization.revoker.size()).toBe(0);
  });

  it("holds no message it already delivered while the stream stays open", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const revoker: AccessRevoker = { track: () => () => {}, size: () => 1, generation: () => 0, changedSince: () => false, recheck: () => undefined, close() {} };
    const delivered: WeakRef<object>[] = [];
    async function* source() {
      for (let i = 0; ; i++) {
        const message = { i, payload: "x".repeat(1000) };
        delivered.push(new WeakRef(message));
        yield message;
      }
    }
    const stream = revocable(revoker, attrs(user("jane"), "watch", "pods", { namespace: "a" }), source());
    for (let i = 0; i < 1000; i++) await stream.next();
    await new Promise((r) => setImmediate(r));
    gc();
    // The open stream may hold its latest message; not the 999 before it.
    expect(delivered.slice(0, 999).filter((ref) => ref.deref() !== undefined).length).toBe(0);
    await stream.return(undefined);
  });
});
