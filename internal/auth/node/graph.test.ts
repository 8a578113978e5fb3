import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { podReferences } from "./graph.ts";

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
