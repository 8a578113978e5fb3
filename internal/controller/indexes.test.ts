import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { controlledBy, controllerIndexFunc, orphansIn } from "./indexes.ts";

const pod = (owners: { uid: string; controller?: boolean }[]) =>
  create(PodSchema, {
    metadata: {
      name: "p",
      namespace: "shop",
      ownerReferences: owners.map((o) => ({ apiVersion: "apps/v1", kind: "ReplicaSet", name: `rs-${o.uid}`, uid: o.uid, controller: o.controller })),
    },
  });

describe("controller index", () => {
  it("files a pod under its controller's uid, and one without a controller as an orphan of its namespace", () => {
    expect(controllerIndexFunc(pod([{ uid: "u1", controller: true }]))).toEqual([controlledBy("u1")]);
    // Only the controller reference counts: a plain owner does not make a pod someone's.
    expect(controllerIndexFunc(pod([{ uid: "u0" }, { uid: "u2", controller: true }]))).toEqual([controlledBy("u2")]);
    expect(controllerIndexFunc(pod([{ uid: "u3", controller: false }]))).toEqual([orphansIn("shop")]);
    expect(controllerIndexFunc(pod([]))).toEqual([orphansIn("shop")]);
    // A uid can never be mistaken for a namespace's orphans.
    expect(controlledBy("shop")).not.toEqual(orphansIn("shop"));
  });
});
