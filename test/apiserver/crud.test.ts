// The API on a real etcd: create, get, list, update, updateStatus and delete of every kind, and
// the semantics a Kubernetes user relies on (conflicts, generation, status, graceful deletion).
import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kinds } from "../../internal/api/registry.ts";
import { samples, pod, namespace, configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("every kind", () => {
  for (const k of kinds) {
    it(`${k.kind}: create, get, list, update, ${k.hasStatus ? "updateStatus, " : ""}delete`, async () => {
      const c = cp.client(k.kind);
      const name = `crud-${k.singular}`;
      const ns = k.namespaced ? "default" : "";
      const sample = samples[k.kind];
      // Changes are made to the JSON form, as a user editing a manifest would.
      const edit = (o: any, fn: (j: any) => void) => {
        const j = toJson(k.schema, o) as any;
        fn(j);
        return fromJson(k.schema, j) as any;
      };
      const created = await c.create(fromJson(k.schema, sample.make(name)) as any);
      expect(created.metadata!.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.metadata!.generation).toBe(1n);
      expect(created.metadata!.creationTimestamp).toBeDefined();
      expect(created.metadata!.namespace).toBe(ns);

      const got = await c.get(ns, name);
      expect(got.metadata!.resourceVersion).toBe(created.metadata!.resourceVersion);

      const listed = await c.list(ns);
      expect(listed.items.map((o) => o.metadata!.name)).toContain(name);
      expect(Number(listed.resourceVersion)).toBeGreaterThanOrEqual(Number(created.metadata!.resourceVersion));

      let updated = got;
      if (sample.changeSpec) {
        const changed = edit(got, sample.changeSpec);
        updated = await c.update(changed);
        expect(updated.metadata!.generation).toBe(2n);
        expect(Number(updated.metadata!.resourceVersion)).toBeGreaterThan(Number(got.metadata!.resourceVersion));

        // A stale resource version is a conflict.
        expect(await codeOf(c.update(changed))).toBe(Code.Aborted);

        // Metadata is not spec: a label change is written, the generation stays.
        updated = await c.update(edit(updated, (j) => (j.metadata.labels = { ...j.metadata.labels, relabeled: "yes" })));
        expect(updated.metadata!.labels.relabeled).toBe("yes");
        expect(updated.metadata!.generation).toBe(2n);
      }

      if (k.hasStatus && sample.changeStatus) {
        const withStatus = edit(updated, sample.changeStatus);
        const st = await c.updateStatus(withStatus);
        expect(st.metadata!.generation).toBe(2n); // status is not spec
        expect(st.status).toEqual(withStatus.status);
        // Update ignores status; UpdateStatus ignores everything else.
        const viaUpdate = structuredClone(st);
        viaUpdate.status = create(k.schema.field.status.message!) as any;
        const afterUpdate = await c.update(viaUpdate);
        expect(afterUpdate.status).toEqual(st.status);
      }

      const del = await c.delete(ns, name);
      if (k.kind === "Namespace") {
        expect(del.deleted).toBe(false);
        await expect.poll(() => codeOf(c.get("", name)), { timeout: 10_000 }).toBe(Code.NotFound);
      } else if (created.metadata!.finalizers.length > 0) {
        // Claims and volumes carry their protection finalizer from creation: the delete only marks.
        expect(del.deleted).toBe(false);
        const marked = await c.get(ns, name);
        expect(marked.metadata!.deletionTimestamp).toBeDefined();
        marked.metadata!.finalizers = [];
        await c.update(marked);
        expect(await codeOf(c.get(ns, name))).toBe(Code.NotFound);
      } else {
        expect(del.deleted).toBe(true);
        expect(await codeOf(c.get(ns, name))).toBe(Code.NotFound);
      }
    });
  }
});

describe("semantics", () => {
  it("refuses a duplicate name with AlreadyExists and a missing object with NotFound", async () => {
    const c = cp.client("ConfigMap");
    await c.create(configMap("dup"));
    expect(await codeOf(c.create(configMap("dup")))).toBe(Code.AlreadyExists);
    expect(await codeOf(c.get("default", "nope"))).toBe(Code.NotFound);
    expect(await codeOf(c.delete("default", "nope"))).toBe(Code.NotFound);
  });

  it("generates names from generateName", async () => {
    const c = cp.client("ConfigMap");
    const { ConfigMapSchema } = await import("../../gen/skiff/v1alpha1/config_pb.js");
    expect(await codeOf(c.create(create(ConfigMapSchema, { metadata: {} })))).toBe(Code.InvalidArgument); // neither name nor generateName
    const o = create(ConfigMapSchema, { metadata: { generateName: "gen-" } });
    const x = await c.create(o);
    const y = await c.create(o);
    expect(x.metadata!.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect(y.metadata!.name).not.toBe(x.metadata!.name);
  });

  it("an unconditional update (no resourceVersion) wins; a no-op update writes nothing", async () => {
    const c = cp.client("ConfigMap");
    const cm = await c.create(configMap("noop", { a: "1" }));
    const same = await c.update(cm);
    expect(same.metadata!.resourceVersion).toBe(cm.metadata!.resourceVersion);
    const blind = structuredClone(cm);
    blind.metadata!.resourceVersion = "";
    blind.data.a = "2";
    const u = await c.update(blind);
    expect(u.data.a).toBe("2");
  });

  it("UpdateStatus with the stored status writes nothing; a changed status is written, the request's spec is not", async () => {
    const pods = cp.client("Pod");
    const p = await pods.create(pod("noop-status"));
    p.status!.phase = "Running";
    const running = await pods.updateStatus(p);
    expect(running.metadata!.resourceVersion).not.toBe(p.metadata!.resourceVersion);
    const again = structuredClone(running);
    again.spec!.containers[0].image = "elsewhere:1"; // UpdateStatus takes only the status
    const same = await pods.updateStatus(again);
    expect(same.metadata!.resourceVersion).toBe(running.metadata!.resourceVersion);
    expect(same.spec!.containers[0].image).toBe(p.spec!.containers[0].image);
    again.status!.message = "now with a message";
    const changed = await pods.updateStatus(again);
    expect(changed.metadata!.resourceVersion).not.toBe(running.metadata!.resourceVersion);
    expect((await pods.get("default", "noop-status")).status!.message).toBe("now with a message");
  });

  it("UpdateStatus checks the status: a bad one is InvalidArgument with status.* paths, and nothing changes", async () => {
    const pods = cp.client("Pod");
    const p = await pods.create(pod("bad-status"));
    p.status!.phase = "Sleeping";
    const err = ConnectError.from(await pods.updateStatus(p).catch((e) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/status\.phase: /);
    expect((await pods.get("default", "bad-status")).metadata!.resourceVersion).toBe(p.metadata!.resourceVersion);
    const nodes = cp.client("Node");
    const { NodeSchema, NodeStatusSchema } = await import("../../gen/skiff/v1alpha1/node_pb.js");
    const n: any = await nodes.create(create(NodeSchema, samples.Node.make("bad-capacity")));
    n.status = create(NodeStatusSchema, { capacity: { cpu: "lots" } });
    const err2 = ConnectError.from(await nodes.updateStatus(n).catch((e) => e));
    expect(err2.code).toBe(Code.InvalidArgument);
    expect(err2.rawMessage).toMatch(/status\.capacity/);
  });

  it("objects need an existing namespace; deleting a namespace deletes its contents", async () => {
    const pods = cp.client("Pod");
    expect(await codeOf(pods.create(pod("p", { namespace: "team-a" })))).toBe(Code.NotFound);
    await cp.client("Namespace").create(namespace("team-a"));
    await pods.create(pod("p1", { namespace: "team-a" }));
    await cp.client("ConfigMap").create(configMap("cfg", {}, "team-a"));
    const del = await cp.client("Namespace").delete("", "team-a");
    expect(del.object.status?.phase).toBe("Terminating");
    expect(await codeOf(pods.create(pod("p2", { namespace: "team-a" })))).toBe(Code.FailedPrecondition);
    await expect.poll(() => codeOf(cp.client("Namespace").get("", "team-a")), { timeout: 10_000 }).toBe(Code.NotFound);
    expect((await pods.list("team-a")).items).toHaveLength(0);
    expect((await cp.client("ConfigMap").list("team-a")).items).toHaveLength(0);
  });

  it("finalizers hold a deleted object until the last one is removed", async () => {
    const c = cp.client("ConfigMap");
    const cm = configMap("held");
    cm.metadata!.finalizers = ["example.com/hold"];
    await c.create(cm);
    const del = await c.delete("default", "held");
    expect(del.deleted).toBe(false);
    expect(del.object.metadata!.deletionTimestamp).toBeDefined();
    const cur = await c.get("default", "held");
    cur.metadata!.finalizers = ["example.com/hold", "example.com/more"];
    expect(await codeOf(c.update(cur))).toBe(Code.FailedPrecondition); // no new finalizers once deleting
    cur.metadata!.finalizers = [];
    await c.update(cur);
    expect(await codeOf(c.get("default", "held"))).toBe(Code.NotFound);
  });

  it("a pod with no node is deleted at once; a bound pod waits for its node agent to confirm", async () => {
    const pods = cp.client("Pod");
    await pods.create(pod("free"));
    expect((await pods.delete("default", "free")).deleted).toBe(true);

    await pods.create(pod("bound", { nodeName: "n1" }));
    const marked = await pods.delete("default", "bound");
    expect(marked.deleted).toBe(false);
    expect(marked.object.metadata!.deletionGracePeriodSeconds).toBe(30n);
    // The agent's confirmation: grace period 0.
    const confirmed = await pods.delete("default", "bound", { gracePeriodSeconds: 0n });
    expect(confirmed.deleted).toBe(true);
    expect(await codeOf(pods.get("default", "bound"))).toBe(Code.NotFound);
  });

  it("Bind assigns a node once, conditionally", async () => {
    const pods = cp.client("Pod");
    const p = await pods.create(pod("to-bind"));
    const { PodService } = await import("../../gen/skiff/v1alpha1/pod_service_pb.js");
    const { createClient } = await import("@connectrpc/connect");
    const raw = createClient(PodService, cp.transport);
    const res = await raw.bind({ namespace: "default", name: "to-bind", nodeName: "n1", uid: p.metadata!.uid });
    expect(res.pod!.spec!.nodeName).toBe("n1");
    expect(res.pod!.status!.conditions.find((c) => c.type === "PodScheduled")?.status).toBe("True");
    expect(await codeOf(raw.bind({ namespace: "default", name: "to-bind", nodeName: "n2" }))).toBe(Code.FailedPrecondition);
    // A bound pod's node cannot change through Update.
    const cur = await pods.get("default", "to-bind");
    cur.spec!.nodeName = "n2";
    expect(await codeOf(pods.update(cur))).toBe(Code.InvalidArgument);
  });

  it("UpdateStatus without a status stores an empty one, and the pod can still be bound", async () => {
    const pods = cp.client("Pod");
    const p = await pods.create(pod("no-status"));
    p.status = undefined;
    const cleared = await pods.updateStatus(p);
    expect(cleared.status).toBeDefined();
    expect(cleared.status!.phase).toBe("");
    const { PodService } = await import("../../gen/skiff/v1alpha1/pod_service_pb.js");
    const { createClient } = await import("@connectrpc/connect");
    const raw = createClient(PodService, cp.transport);
    const res = await raw.bind({ namespace: "default", name: "no-status", nodeName: "n1", uid: p.metadata!.uid });
    expect(res.pod!.spec!.nodeName).toBe("n1");
    expect(res.pod!.status!.conditions.map((c) => c.type)).toEqual(["PodScheduled"]);
  });

  it("bad input gets InvalidArgument naming every bad field, and nothing is stored", async () => {
    const pods = cp.client("Pod");
    const before = await cp.store.currentRevision();
    const bad = pod("Bad_Name");
    bad.metadata!.labels = { "bad key!": "v" };
    bad.spec!.containers.push(create((await import("../../gen/skiff/v1alpha1/pod_pb.js")).ContainerSchema, { name: "main", image: "", resources: { limits: { memory: "12 Mi" } } }));
    bad.spec!.restartPolicy = "Sometimes";
    let err: ConnectError | undefined;
    try {
      await pods.create(bad);
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(err?.code).toBe(Code.InvalidArgument);
    for (const field of ["metadata.name", "metadata.labels", "spec.containers[1].name", "spec.containers[1].image", "spec.containers[1].resources.limits", "spec.restartPolicy"]) {
      expect(err?.rawMessage).toContain(field);
    }
    expect(await cp.store.currentRevision()).toBe(before);
    // The server keeps serving.
    expect((await pods.list("default")).resourceVersion).not.toBe("");
  });

  it("label and field selectors filter lists", async () => {
    const pods = cp.client("Pod");
    await pods.create(pod("sel-a", { labels: { app: "web", tier: "front" }, nodeName: "n1" }));
    await pods.create(pod("sel-b", { labels: { app: "web", tier: "back" }, nodeName: "n2" }));
    await pods.create(pod("sel-c", { labels: { app: "db" } }));
    const names = async (o: { labelSelector?: string; fieldSelector?: string }) =>
      (await pods.list("default", o)).items.map((p) => p.metadata!.name).filter((n) => n.startsWith("sel-")).sort();
    expect(await names({ labelSelector: "app=web" })).toEqual(["sel-a", "sel-b"]);
    expect(await names({ labelSelector: "app=web,tier!=front" })).toEqual(["sel-b"]);
    expect(await names({ labelSelector: "app in (db)" })).toEqual(["sel-c"]);
    expect(await names({ fieldSelector: "spec.nodeName=n2" })).toEqual(["sel-b"]);
    expect(await names({ fieldSelector: "spec.nodeName=" })).toEqual(["sel-c"]);
    expect(await codeOf(pods.list("default", { fieldSelector: "spec.bogus=1" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(pods.list("default", { labelSelector: "app in (" }))).toBe(Code.InvalidArgument);
  });
});
