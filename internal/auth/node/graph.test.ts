import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName, type ApiObject } from "../../api/registry.ts";
import type { CacheEvent } from "../../apiserver/watchcache.ts";
import { createNodeGraph, podReferences } from "./graph.ts";

const Pods = kindByName("Pod")!;

describe("podReferences", () => {
  it("includes the ConfigMaps and Secrets of projected volumes, so the node may read them", () => {
    const pod = create(PodSchema, {
      metadata: { name: "p", namespace: "ns" },
      spec: {
        volumes: [
          { name: "all", projected: { sources: [{ configMap: { name: "cm" } }, { secret: { name: "s" } }, { serviceAccountToken: { path: "t" } }] } },
          { name: "d", downwardApi: { items: [] } },
        ],
      },
    });
    expect(podReferences(pod).sort()).toEqual(["configmaps/ns/cm", "secrets/ns/s", "serviceaccounts/ns/default"]);
  });
});

describe("createNodeGraph", () => {
  // A pods source the way the watch cache feeds it: events with the object before the change.
  function podsSource() {
    const listeners = new Set<(ev?: CacheEvent) => void>();
    return {
      kind: Pods,
      get: () => undefined,
      list: () => [],
      onChange(l: (ev?: CacheEvent) => void) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      emit: (ev: CacheEvent) => listeners.forEach((l) => l(ev)),
    };
  }
  const pod = (node: string, secret: string) =>
    create(PodSchema, { metadata: { name: "p", namespace: "ns" }, spec: { nodeName: node, volumes: [{ name: "s", secret: { secretName: secret } }] } }) as ApiObject;

  it("a status write (same spec) changes nothing; a new spec (binding, references) takes effect at once", () => {
    const src = podsSource();
    const graph = createNodeGraph(src);
    const changes: unknown[] = [];
    graph.onChange((c) => changes.push(c));
    const bound = pod("n1", "s1");
    src.emit({ type: "ADDED", obj: bound, revision: 2, cost: 0 });
    expect(graph.uses("n1", "secrets/ns/s1")).toBe(true);
    changes.length = 0;

    const statusWrite = { ...bound, metadata: { ...bound.metadata! }, status: { phase: "Running" } } as ApiObject;
    src.emit({ type: "MODIFIED", obj: statusWrite, prev: bound, revision: 3, cost: 0 });
    expect(changes).toEqual([]);
    expect(graph.uses("n1", "secrets/ns/s1")).toBe(true);

    const moved = pod("n2", "s2"); // a new spec: decoded from storage, or another writer's
    src.emit({ type: "MODIFIED", obj: moved, prev: statusWrite, revision: 4, cost: 0 });
    expect(changes).toEqual([{ nodes: ["n1", "n2"], pod: { namespace: "ns", name: "p" } }]);
    expect(graph.uses("n1", "secrets/ns/s1")).toBe(false);
    expect(graph.uses("n2", "secrets/ns/s2")).toBe(true);
    expect(graph.nodeOfPod("ns", "p")).toBe("n2");
  });
});
