// The endpoints controller: every Service with a selector gets an Endpoints object of the same
// name listing the IPs and ports of the pods it selects (computeSubsets). Keyed by the Service:
//
//   Service add/update/delete ──────────────────────┐
//   Pod add/update/delete ─► Services selecting it ─┼─► reconcile(ns/name)
//   Endpoints changed or deleted by someone else ───┘     │
//     Service gone ─────────► delete its Endpoints        │
//     no selector ──────────► leave its Endpoints alone   │
//     otherwise ────────────► create / update only when subsets or labels differ
import { create, equals } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import { EndpointsSchema, type Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { keyOf, NAMESPACE_INDEX, namespaceIndexFunc, splitKey, type Informer } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";
import { computeSubsets, selects } from "./subsets.ts";

export interface EndpointsControllerOptions {
  workers: number;
}

function ensureNamespaceIndex(inf: Informer<any>): void {
  try {
    inf.indexKeys(NAMESPACE_INDEX, "");
  } catch {
    inf.addIndexers({ [NAMESPACE_INDEX]: namespaceIndexFunc });
  }
}

const sameLabels = (a: Record<string, string>, b: Record<string, string>) =>
  Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

export function createEndpointsController(ctx: ControllerContext, overrides: Partial<EndpointsControllerOptions> = {}): Controller {
  const log = ctx.log;
  const services = ctx.informers.informerFor<Service>("Service");
  const pods = ctx.informers.informerFor<Pod>("Pod");
  const endpoints = ctx.informers.informerFor<Endpoints>("Endpoints");
  const client = createResourceClient<Endpoints>(ctx.transport, "Endpoints");
  ensureNamespaceIndex(services);
  ensureNamespaceIndex(pods);

  const controller = createController({
    name: "endpoints",
    log,
    workers: overrides.workers ?? ctx.options?.concurrentSyncs ?? 2,
    reconcile,
  });
  controller.watch(services);
  controller.watch(endpoints);

  /** The Services whose Endpoints may list this pod (before or after a change). */
  const servicesOf = (...versions: Pod[]) => {
    const keys = new Set<string>();
    for (const pod of versions) {
      for (const svc of services.byIndex(NAMESPACE_INDEX, pod.metadata?.namespace ?? "")) {
        if (selects(svc, pod)) keys.add(keyOf(svc));
      }
    }
    for (const k of keys) controller.enqueue(k);
  };
  const offs = [pods.onAdd((p) => servicesOf(p)), pods.onUpdate((o, p) => servicesOf(o, p)), pods.onDelete((p) => servicesOf(p))];

  async function reconcile(key: string): Promise<Result> {
    const { namespace, name } = splitKey(key);
    const svc = services.get(key);
    const current = endpoints.get(key);
    if (!svc) {
      if (!current) return;
      try {
        await client.delete(namespace, name, { uid: current.metadata!.uid });
        log.debug({ service: key }, "deleted endpoints of a deleted service");
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code !== Code.NotFound && code !== Code.Aborted) throw err;
      }
      return;
    }
    // Without a selector the Endpoints are the user's to write (external backends).
    if (Object.keys(svc.spec?.selector ?? {}).length === 0) return;

    const subsets = computeSubsets(svc, pods.byIndex(NAMESPACE_INDEX, namespace));
    const labels = { ...(svc.metadata?.labels ?? {}) };
    if (!current) {
      const ep = create(EndpointsSchema, { metadata: { name, namespace, labels }, subsets });
      try {
        await client.create(ep);
      } catch (err) {
        // Ours is stale: the informer will deliver the existing one, which requeues this key.
        if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
      }
      return;
    }
    const wanted = create(EndpointsSchema, { subsets });
    const have = create(EndpointsSchema, { subsets: current.subsets });
    if (equals(EndpointsSchema, wanted, have) && sameLabels(labels, current.metadata?.labels ?? {})) return;
    const next = cloneMessage(EndpointsSchema, current);
    next.subsets = subsets;
    next.metadata!.labels = labels;
    try {
      await client.update(next);
    } catch (err) {
      // Deleted meanwhile: its delete event requeues the key and the next pass creates it again.
      if (ConnectError.from(err).code !== Code.NotFound) throw err;
    }
  }

  return {
    ...controller,
    async stop() {
      for (const off of offs.splice(0)) off();
      await controller.stop();
    },
  };
}
