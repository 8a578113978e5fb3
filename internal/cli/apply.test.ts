// applyObject against the apiserver's real resource semantics (memory store, no network).
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeploymentStatusSchema } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { kindByName, type ApiObject } from "../api/registry.ts";
import { createResourceOps, type ResourceOps } from "../apiserver/resources.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { applyObject } from "./apply.ts";
import { decodeDocument } from "./manifest.ts";
import { parseManifestText } from "./manifest-source.ts";

function clientFor(ops: ResourceOps): ResourceClient {
  return {
    kind: ops.kind,
    create: (o, opts) => ops.create(o, opts?.dryRun),
    get: (ns, n) => ops.get(ns, n),
    list: (ns, o) => ops.list(ns, o?.labelSelector ?? "", o?.fieldSelector ?? ""),
    update: (o, opts) => ops.update(o, opts?.dryRun),
    updateStatus: (o) => ops.updateStatus(o),
    delete: async (ns, n, o) => {
      const r = await ops.delete(ns, n, o as any);
      return { object: r.obj, deleted: r.deleted };
    },
    watch: () => {
      throw new Error("not used");
    },
  };
}

function setup(kindName: string) {
  const store = createMemoryStore();
  const kind = kindByName(kindName)!;
  const ops = createResourceOps(kind, { store, caches: new Map() });
  return { kind, ops, client: clientFor(ops) };
}

function manifest(text: string): ApiObject {
  const o = decodeDocument(parseManifestText(text, "t.yaml")[0]).object;
  o.metadata!.namespace ||= "default";
  return o;
}

const DEPLOY = (replicas: number) => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "busybox:1", ports: [{containerPort: 8080}]}]
`;

describe("applyObject", () => {
  it("creates, leaves an identical object unchanged, and configures a changed one", async () => {
    const { client } = setup("Deployment");
    const first = await applyObject(client, manifest(DEPLOY(3)));
    expect(first.result).toBe("created");
    const again = await applyObject(client, manifest(DEPLOY(3)));
    expect(again.result).toBe("unchanged");
    expect(again.object.metadata!.resourceVersion).toBe(first.object.metadata!.resourceVersion);
    const changed = await applyObject(client, manifest(DEPLOY(5)));
    expect(changed.result).toBe("configured");
    expect((changed.object as any).spec.replicas).toBe(5);
    expect(changed.object.metadata!.generation).toBe(2n);
  });

  it("keeps the server's status and what controllers own", async () => {
    const { client, ops } = setup("Deployment");
    await applyObject(client, manifest(DEPLOY(3)));
    const cur = (await ops.get("default", "web")) as any;
    cur.status = create(DeploymentStatusSchema, { replicas: 3, readyReplicas: 2 });
    await ops.updateStatus(cur);
    const withSystem = (await ops.get("default", "web")) as any;
    withSystem.metadata.annotations["deployment.kubernetes.io/revision"] = "1";
    withSystem.metadata.finalizers = ["example.com/keep"];
    await ops.update(withSystem);

    const r = await applyObject(client, manifest(DEPLOY(3)));
    expect(r.result).toBe("unchanged");
    const after = (await ops.get("default", "web")) as any;
    expect(after.status.readyReplicas).toBe(2);
    expect(after.metadata.annotations).toEqual({ "deployment.kubernetes.io/revision": "1" });
    expect(after.metadata.finalizers).toEqual(["example.com/keep"]);
  });

  it("keeps a bound pod's node and a service's cluster IP when the manifest leaves them out", async () => {
    const pods = setup("Pod");
    const podYaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'busybox:1'}]}\n";
    await applyObject(pods.client, manifest(podYaml));
    const bound = (await pods.ops.get("default", "p")) as any;
    bound.spec.nodeName = "node-1";
    await pods.ops.update(bound);
    expect((await applyObject(pods.client, manifest(podYaml))).result).toBe("unchanged");

    const svcs = setup("Service");
    const svcYaml = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}\n";
    await applyObject(svcs.client, manifest(svcYaml));
    const s = (await svcs.ops.get("default", "s")) as any;
    s.spec.clusterIp = "10.96.0.7";
    await svcs.ops.update(s);
    expect((await applyObject(svcs.client, manifest(svcYaml))).result).toBe("unchanged");
    expect((await applyObject(svcs.client, manifest(svcYaml.replace("8080", "9090")))).result).toBe("configured");
    expect(((await svcs.ops.get("default", "s")) as any).spec.clusterIp).toBe("10.96.0.7");
  });

  it("does not store anything on a dry run", async () => {
    const { client, ops } = setup("Deployment");
    expect((await applyObject(client, manifest(DEPLOY(1)), { dryRun: true })).result).toBe("created");
    await expect(ops.get("default", "web")).rejects.toThrow(/not found/);
  });

  it("passes the server's validation errors through", async () => {
    const { client } = setup("Deployment");
    await expect(applyObject(client, manifest(DEPLOY(1).replace("{app: web}}\n  template", "{app: other}}\n  template")))).rejects.toThrow(/invalid/);
  });
});
