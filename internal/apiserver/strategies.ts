// Per-kind behaviour that needs the apiserver's state (Kubernetes' per-resource strategies, the
// part that cannot live in the kind registry): assembled here once, so the generic handlers
// (resources.ts, service.ts) never branch on a kind's name.
import type { ApiObject } from "../api/registry.ts";
import type { Store } from "../storage/store.ts";
import type { NamespaceFinalizer } from "./namespaces.ts";
import type { PodLogs } from "./pod-logs.ts";
import { bindPod, type ResourceOps, type WriteHooks } from "./resources.ts";
import type { ServiceAccounts } from "./serviceaccounts.ts";
import type { ServiceAllocator } from "./service-alloc.ts";
import type { WatchCache } from "./watchcache.ts";

export interface ApiServerKindHooks {
  /** Storage writes that commit with the kind's objects (Service ClusterIPs and NodePorts). */
  writeHooks?: WriteHooks;
  /** Admission of a new object after defaulting (a Pod's ServiceAccount and token volume). */
  admit?: (obj: ApiObject) => Promise<void>;
  /** A delete marked an object its kind removes later (a Namespace: its contents must go). */
  onDeleting?: (name: string) => void;
  /** Handlers of the kind's RPCs beyond the generic ones (PodService.Bind and Log, ServiceAccountService.CreateToken). */
  extraRpcs?: Record<string, unknown>;
}

export interface KindHooksDeps {
  store: Store;
  ops: Map<string, ResourceOps>;
  caches: Map<string, WatchCache>;
  allocator: ServiceAllocator;
  serviceAccounts: ServiceAccounts;
  namespaceFinalizer: NamespaceFinalizer;
  /** PodService.Log; made once the Pod and Node operations exist, so asked for at call time. */
  podLogs: () => PodLogs;
}

/** The apiserver's hooks by kind name; kinds without an entry are purely generic. */
export function createKindHooks(d: KindHooksDeps): Map<string, ApiServerKindHooks> {
  return new Map<string, ApiServerKindHooks>([
    ["Service", { writeHooks: d.allocator.hooks }],
    ["Namespace", { onDeleting: (name) => d.namespaceFinalizer.terminate(name) }],
    ["ServiceAccount", { extraRpcs: d.serviceAccounts.rpcs }],
    [
      "Pod",
      {
        admit: d.serviceAccounts.admitPod,
        extraRpcs: {
          log: (req: any, ctx: any) => d.podLogs().log(req, ctx),
          bind: async (req: any) => ({
            pod: await bindPod(d.ops.get("Pod")!, d.store, req.namespace, req.name, req.nodeName, req.uid, d.caches.get("Pod")),
          }),
        },
      },
    ],
  ]);
}
