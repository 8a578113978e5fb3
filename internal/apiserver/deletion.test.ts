// Deletion through the kinds' strategies (registry.ts): a pod bound to a node stays until its
// agent confirms with grace period 0, an unbound pod goes at once, a namespace turns Terminating
// and is handed to the apiserver's cleanup; other kinds go at once unless finalizers hold them.
import { create } from "@bufbuild/protobuf";
import { beforeEach, describe, expect, it } from "vitest";
import { ConfigMapSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { DeleteOptionsSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { createResourceOps } from "./resources.ts";

let store: Store;
beforeEach(() => {
  store = createMemoryStore({ historyLimit: 1000 });
});

const pod = (name: string, nodeName: string) =>
  create(PodSchema, {
    metadata: { name, namespace: "default" },
    spec: { nodeName, terminationGracePeriodSeconds: 5n, containers: [{ name: "c", image: "busybox" }] },
  });

describe("deletion strategies", () => {
  it("keeps a bound pod with its grace period until a delete with grace 0, and removes an unbound pod at once", async () => {
    const pods = createResourceOps(kindByName("Pod")!, { store, caches: new Map() });
    await pods.create(pod("bound", "n1"));
    const marked = await pods.delete("default", "bound");
    expect(marked.deleted).toBe(false);
    expect(marked.obj.metadata?.deletionGracePeriodSeconds).toBe(5n);
    expect(marked.obj.metadata?.deletionTimestamp).toBeDefined();
    expect((await pods.get("default", "bound")).metadata?.deletionTimestamp).toBeDefined();
    const confirmed = await pods.delete("default", "bound", create(DeleteOptionsSchema, { gracePeriodSeconds: 0n }));
    expect(confirmed.deleted).toBe(true);
    await expect(pods.get("default", "bound")).rejects.toThrow(/not found/);

    await pods.create(pod("pending", ""));
    expect((await pods.delete("default", "pending")).deleted).toBe(true);
  });

  it("turns a namespace Terminating, keeps it, and hands it to the apiserver's cleanup on every delete", async () => {
    const handed: string[] = [];
    const namespaces = createResourceOps(kindByName("Namespace")!, { store, caches: new Map(), onDeleting: (n) => handed.push(n) });
    await namespaces.create(create(NamespaceSchema, { metadata: { name: "team-a" } }));
    const first = await namespaces.delete("", "team-a");
    expect(first.deleted).toBe(false);
    expect((first.obj as any).status.phase).toBe("Terminating");
    expect((await namespaces.delete("", "team-a")).deleted).toBe(false);
    expect(handed).toEqual(["team-a", "team-a"]);
    expect((await namespaces.get("", "team-a")).metadata?.deletionTimestamp).toBeDefined();
  });

  it("removes a kind without a strategy at once, and never calls onDeleting for it", async () => {
    const handed: string[] = [];
    const cms = createResourceOps(kindByName("ConfigMap")!, { store, caches: new Map(), onDeleting: (n) => handed.push(n) });
    await cms.create(create(ConfigMapSchema, { metadata: { name: "c", namespace: "default" } }));
    expect((await cms.delete("default", "c")).deleted).toBe(true);
    expect(handed).toEqual([]);
  });
});
