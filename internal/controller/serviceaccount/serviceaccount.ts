// The ServiceAccount controller (Kubernetes' serviceaccounts-controller): every namespace has a
// ServiceAccount named "default", the identity of pods that name none. Keyed by namespace; a
// namespace added (or found at start) and a "default" account deleted both queue it. Namespaces
// being deleted are left alone (their contents are going).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Namespace } from "../../../gen/skiff/v1alpha1/namespace_pb.js";
import { ServiceAccountSchema, type ServiceAccount } from "../../../gen/skiff/v1alpha1/service_account_pb.js";
import { createResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";

export const DEFAULT_SERVICE_ACCOUNT = "default";

export function createServiceAccountController(ctx: ControllerContext): Controller {
  const namespaces = ctx.informers.informerFor<Namespace>("Namespace");
  const accounts = ctx.informers.informerFor<ServiceAccount>("ServiceAccount");
  const client = createResourceClient<ServiceAccount>(ctx.transport, "ServiceAccount");
  const controller = createController({ name: "serviceaccount", log: ctx.log, workers: ctx.options?.concurrentSyncs, reconcile });
  controller.watch(namespaces, (ns) => [ns.metadata!.name]);
  controller.watch(accounts, (sa) => (sa.metadata!.name === DEFAULT_SERVICE_ACCOUNT ? [sa.metadata!.namespace] : []));

  async function reconcile(ns: string): Promise<Result> {
    const namespace = namespaces.get(ns);
    if (!namespace || namespace.metadata!.deletionTimestamp) return;
    if (accounts.get(`${ns}/${DEFAULT_SERVICE_ACCOUNT}`)) return;
    try {
      await client.create(create(ServiceAccountSchema, { metadata: { name: DEFAULT_SERVICE_ACCOUNT, namespace: ns } }));
      ctx.log.info({ namespace: ns }, "created the default service account");
    } catch (err) {
      const code = ConnectError.from(err).code;
      // Made meanwhile (by the apiserver for a pod); or the namespace began to go away.
      if (code === Code.AlreadyExists || code === Code.FailedPrecondition || code === Code.NotFound) return;
      throw err;
    }
  }

  return controller;
}
