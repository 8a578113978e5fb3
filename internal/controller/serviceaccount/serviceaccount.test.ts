import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { NamespaceSchema, type Namespace } from "../../../gen/skiff/v1alpha1/namespace_pb.js";
import type { ServiceAccount } from "../../../gen/skiff/v1alpha1/service_account_pb.js";
import { startTestCluster, waitFor, type TestCluster } from "../node/testing.ts";
import { createServiceAccountController } from "./serviceaccount.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe("service account controller", () => {
  it("gives every namespace, old and new, a default ServiceAccount, and makes it again when deleted", async () => {
    cluster = await startTestCluster();
    const namespaces = cluster.client<Namespace>("Namespace");
    const accounts = cluster.client<ServiceAccount>("ServiceAccount");
    await namespaces.create(create(NamespaceSchema, { metadata: { name: "before" } }));
    await cluster.start(createServiceAccountController(cluster.ctx));
    await waitFor("default SA in an existing namespace", () => accounts.get("before", "default"));
    await waitFor("default SA in skiff-system", () => accounts.get("skiff-system", "default"));

    await namespaces.create(create(NamespaceSchema, { metadata: { name: "after" } }));
    const first = await waitFor("default SA in a new namespace", () => accounts.get("after", "default"));

    await accounts.delete("after", "default");
    const again = await waitFor("default SA made again", async () => {
      const sa = await accounts.get("after", "default");
      return sa.metadata!.uid !== first.metadata!.uid && sa;
    });
    expect(again.metadata!.name).toBe("default");
  });
});
