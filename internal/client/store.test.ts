import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createIndexedStore, keyOf, type IndexFunc } from "./store.ts";

interface PodShape {
  name: string;
  rv: string;
  app?: string;
  owners?: { uid: string; controller?: boolean }[];
  node?: string;
}

const pod = (p: PodShape): Pod =>
  create(PodSchema, {
    metadata: {
      name: p.name,
      namespace: "default",
      resourceVersion: p.rv,
      labels: p.app ? { app: p.app } : {},
      ownerReferences: (p.owners ?? []).map((o) => ({ apiVersion: "apps/v1", kind: "ReplicaSet", name: o.uid, uid: o.uid, controller: o.controller })),
    },
    spec: { nodeName: p.node ?? "", containers: [{ name: "c", image: "busybox" }] },
  });

const indexers: Record<string, IndexFunc<Pod>> = {
  byApp: (p) => (p.metadata?.labels.app ? [p.metadata.labels.app] : []),
  byController: (p) => {
    const ref = p.metadata?.ownerReferences.find((r) => r.controller);
    return ref ? [ref.uid] : [];
  },
  byOwner: (p) => p.metadata!.ownerReferences.map((r) => r.uid),
  byNode: (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []),
};

function setup() {
  const errors: string[] = [];
  const store = createIndexedStore<Pod>("informer for Pod", (index, key, err) => errors.push(`${index} ${key}: ${String(err)}`));
  store.addIndexers(indexers);
  const put = (p: PodShape) => {
    const obj = pod(p);
    store.put(keyOf(obj), obj);
    return obj;
  };
  const at = (index: string, value: string) => store.indexKeys(index, value).sort();
  return { store, put, at, errors };
}

describe("indexed store", () => {
  it("follows a change of the indexed value: label, controller owner, node", () => {
    const { put, at } = setup();
    put({ name: "a", rv: "1", app: "web", owners: [{ uid: "rs1", controller: true }] });
    put({ name: "b", rv: "2", app: "web", owners: [{ uid: "rs1", controller: true }], node: "n1" });
    expect(at("byApp", "web")).toEqual(["default/a", "default/b"]);
    expect(at("byController", "rs1")).toEqual(["default/a", "default/b"]);

    put({ name: "a", rv: "3", app: "db", owners: [{ uid: "rs2", controller: true }], node: "n2" });
    expect(at("byApp", "web")).toEqual(["default/b"]);
    expect(at("byApp", "db")).toEqual(["default/a"]);
    expect(at("byController", "rs1")).toEqual(["default/b"]);
    expect(at("byController", "rs2")).toEqual(["default/a"]);
    expect(at("byNode", "n2")).toEqual(["default/a"]);

    // Released by its controller (orphaned) and unscheduled: out of both indexes, not lost elsewhere.
    put({ name: "b", rv: "4", app: "web", owners: [{ uid: "rs1" }] });
    expect(at("byController", "rs1")).toEqual([]);
    expect(at("byNode", "n1")).toEqual([]);
    expect(at("byOwner", "rs1")).toEqual(["default/b"]);
    expect(at("byApp", "web")).toEqual(["default/b"]);
  });

  it("moves only the values that came or went when an object has several", () => {
    const { put, at } = setup();
    put({ name: "a", rv: "1", owners: [{ uid: "o1" }, { uid: "o2" }] });
    put({ name: "a", rv: "2", owners: [{ uid: "o2" }, { uid: "o3" }] });
    expect(at("byOwner", "o1")).toEqual([]);
    expect(at("byOwner", "o2")).toEqual(["default/a"]);
    expect(at("byOwner", "o3")).toEqual(["default/a"]);
    // Same values in another order: still filed under each once.
    put({ name: "a", rv: "3", owners: [{ uid: "o3" }, { uid: "o2" }, { uid: "o3" }] });
    expect(at("byOwner", "o2")).toEqual(["default/a"]);
    expect(at("byOwner", "o3")).toEqual(["default/a"]);
  });

  it("serves the newest object when an update leaves every index value as it was", () => {
    const { store, put, at } = setup();
    put({ name: "a", rv: "1", app: "web", node: "n1" });
    const newer = put({ name: "a", rv: "2", app: "web", node: "n1" });
    expect(at("byApp", "web")).toEqual(["default/a"]);
    expect(at("byNode", "n1")).toEqual(["default/a"]);
    expect(store.items.get(store.indexKeys("byNode", "n1")[0])).toBe(newer);
  });

  it("drops a deleted object from every index", () => {
    const { store, put, at } = setup();
    put({ name: "a", rv: "1", app: "web", owners: [{ uid: "rs1", controller: true }], node: "n1" });
    put({ name: "b", rv: "2", app: "web" });
    store.remove("default/a");
    expect(store.items.has("default/a")).toBe(false);
    expect(at("byApp", "web")).toEqual(["default/b"]);
    expect(at("byController", "rs1")).toEqual([]);
    expect(at("byOwner", "rs1")).toEqual([]);
    expect(at("byNode", "n1")).toEqual([]);
    // Created again under the same name: indexed afresh.
    put({ name: "a", rv: "3", node: "n1" });
    expect(at("byNode", "n1")).toEqual(["default/a"]);
    expect(at("byApp", "web")).toEqual(["default/b"]);
  });

  it("leaves an object out of an index whose function throws, and files it once it works", () => {
    const { store, put, at, errors } = setup();
    store.addIndexers({ fussy: (p) => (p.metadata?.labels.app === "bad" ? (null as unknown as string[]).slice() : [p.metadata!.name]) });
    put({ name: "a", rv: "1", app: "ok" });
    expect(at("fussy", "a")).toEqual(["default/a"]);
    put({ name: "a", rv: "2", app: "bad" });
    expect(at("fussy", "a")).toEqual([]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^fussy default\/a: /);
    put({ name: "a", rv: "3", app: "ok" });
    expect(at("fussy", "a")).toEqual(["default/a"]);
  });

  it("indexes stored objects when an index is added later, and refuses a duplicate or unknown name", () => {
    const { store, put } = setup();
    put({ name: "a", rv: "1", node: "n1" });
    store.addIndexers({ byRv: (p) => [p.metadata!.resourceVersion] });
    expect(store.indexKeys("byRv", "1")).toEqual(["default/a"]);
    expect(() => store.addIndexers({ byNode: () => [] })).toThrow(/informer for Pod: index "byNode" already exists/);
    expect(() => store.indexKeys("nope", "x")).toThrow(/no index named "nope"/);

    // A store that had no index when its objects were put: they are indexed, then follow changes.
    const bare = createIndexedStore<Pod>("informer for Pod", () => {});
    bare.put("default/b", pod({ name: "b", rv: "1", node: "n1" }));
    bare.addIndexers({ byNode: indexers.byNode });
    bare.addIndexers({ byApp: indexers.byApp });
    bare.put("default/b", pod({ name: "b", rv: "2", app: "web", node: "n2" }));
    expect(bare.indexKeys("byNode", "n1")).toEqual([]);
    expect(bare.indexKeys("byNode", "n2")).toEqual(["default/b"]);
    expect(bare.indexKeys("byApp", "web")).toEqual(["default/b"]);
    bare.remove("default/b");
    expect(bare.indexKeys("byNode", "n2")).toEqual([]);
    expect(bare.indexKeys("byApp", "web")).toEqual([]);
  });
});
