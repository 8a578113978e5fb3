// Builders for the garbage collector's tests (unit and integration): a Deployment → ReplicaSet →
// Pod chain made by hand, linked with ownerReferences. Used by tests only.
import { create } from "@bufbuild/protobuf";
import { DeploymentSchema, type Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { OwnerReferenceSchema, type OwnerReference } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import type { ResourceClient } from "../../client/resource-client.ts";
import { testPod } from "../node/testing.ts";

export function ownerRef(kind: string, owner: ApiObject, o: { controller?: boolean; block?: boolean } = {}): OwnerReference {
  const apiVersion = kind === "Deployment" || kind === "ReplicaSet" ? "apps/v1" : "v1";
  return create(OwnerReferenceSchema, { apiVersion, kind, name: owner.metadata!.name, uid: owner.metadata!.uid, controller: o.controller ?? true, blockOwnerDeletion: o.block ?? true });
}

const template = (app: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: "main", image: "skiff.local/busybox:v1" }] } });

export function deployment(name: string): Deployment {
  return create(DeploymentSchema, { metadata: { name, namespace: "default" }, spec: { replicas: 2, selector: { matchLabels: { app: name } }, template: template(name) } });
}

export function replicaSet(name: string, app: string, owners: OwnerReference[] = []): ReplicaSet {
  return create(ReplicaSetSchema, {
    metadata: { name, namespace: "default", ownerReferences: owners },
    spec: { replicas: 2, selector: { matchLabels: { app } }, template: template(app) },
  });
}

export function ownedPod(name: string, owners: OwnerReference[], finalizers: string[] = []): Pod {
  const p = testPod(name, { labels: { app: "web" } });
  p.metadata!.ownerReferences = owners;
  p.metadata!.finalizers = finalizers;
  return p;
}

/** Deployment web → ReplicaSet web-1 → pods web-1-a, web-1-b (pod finalizers optional). */
export async function createChain(c: { client<T extends ApiObject>(kind: string): ResourceClient<T> }, podFinalizers: string[] = []) {
  const d = await c.client<Deployment>("Deployment").create(deployment("web"));
  const rs = await c.client<ReplicaSet>("ReplicaSet").create(replicaSet("web-1", "web", [ownerRef("Deployment", d)]));
  const pods = [];
  for (const n of ["web-1-a", "web-1-b"]) pods.push(await c.client<Pod>("Pod").create(ownedPod(n, [ownerRef("ReplicaSet", rs)], podFinalizers)));
  return { d, rs, pods };
}
