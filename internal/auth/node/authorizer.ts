// The node authorizer: what an agent (user "system:node:<name>" in group "system:nodes") may do
// because of which node it is. It only allows; everything else is no-opinion (with the reason,
// for the refusal's message) and RBAC decides, as in Kubernetes: the default `system:node`
// ClusterRole grants the reads every node needs (nodes, services, endpoints) and nothing below,
// so what this authorizer does not allow is refused unless an operator grants it on purpose.
//
//   its own Node             get, update, patch, status; create (admission checks the name:
//                            restriction.ts)
//   its own Lease            in skiff-system, named after the node
//   pods                     get / status / delete of pods bound to it; list and watch only with
//                            fieldSelector spec.nodeName=<its name>
//   Secrets, ConfigMaps,     get of those its pods use (graph.ts); create serviceaccounts/token
//   PVCs, ServiceAccounts    for the ServiceAccounts its pods run as
//   PersistentVolumes        get of those bound to claims its pods use; get, update and (with
//                            fieldSelector spec.nodeAffinity.nodeName=<its name>) list and watch
//                            of those pinned to it (its local-path volumes: it makes and removes
//                            their directories; restriction.ts lets it only remove finalizers)
import { parseFieldSelector } from "../../api/selector.ts";
import { NODE_LEASE_NAMESPACE } from "../../agent/lease.ts";
import type { Authorizer, Decision, PolicySource, RequestAttributes, UserInfo } from "../types.ts";
import type { PersistentVolume } from "../../../gen/skiff/v1alpha1/storage_pb.js";
import { PINNED_NODE_FIELD, pinnedNode } from "../../api/storage.ts";
import { refKey, type NodeGraph } from "./graph.ts";

export const NODE_USER_PREFIX = "system:node:";
export const NODES_GROUP = "system:nodes";

/** The node a user acts for, when it is a node identity. */
export function nodeNameOf(user: UserInfo): string | undefined {
  if (!user.groups.includes(NODES_GROUP) || !user.name.startsWith(NODE_USER_PREFIX)) return undefined;
  const name = user.name.slice(NODE_USER_PREFIX.length);
  return name === "" ? undefined : name;
}

const NO_OPINION: Decision = { decision: "no-opinion", reason: "" };

export interface NodeAuthorizer extends Authorizer, PolicySource {
  close(): void;
}

/** Reads a PersistentVolume by name (the apiserver's watch cache). */
export type VolumeLookup = (name: string) => PersistentVolume | undefined;

export function createNodeAuthorizer(graph: NodeGraph, volumeByName: VolumeLookup = () => undefined): NodeAuthorizer {
  const allow = (why: string): Decision => ({ decision: "allow", reason: `node authorizer: ${why}` });
  // Not ours to allow: RBAC decides; the reason says what the node authorizer would need.
  const notMine = (why: string): Decision => ({ decision: "no-opinion", reason: why });

  function nodes(a: RequestAttributes, node: string): Decision {
    if (a.verb === "create" && a.subresource === "") return allow("a node may register itself");
    if (["get", "list", "watch"].includes(a.verb) && a.subresource === "") return NO_OPINION;
    if (a.name === node && ["get", "update", "patch"].includes(a.verb) && (a.subresource === "" || a.subresource === "status")) return allow(`its own Node "${node}"`);
    return notMine(`node "${node}" may only change its own Node object`);
  }

  function leases(a: RequestAttributes, node: string): Decision {
    if (a.namespace !== NODE_LEASE_NAMESPACE) return notMine(`node "${node}" may only use its Lease in ${NODE_LEASE_NAMESPACE}`);
    if (a.verb === "create" && a.name === "") return allow("a node may create its Lease");
    if (a.name === node && ["get", "update", "patch", "delete"].includes(a.verb)) return allow(`its own Lease "${node}"`);
    return notMine(`node "${node}" may only use the Lease named after it`);
  }

  function pods(a: RequestAttributes, node: string): Decision {
    if (a.verb === "list" || a.verb === "watch") {
      if (a.subresource === "" && selectsNode(a.fieldSelector, node)) return allow(`pods bound to "${node}"`);
      return notMine(`node "${node}" may only list and watch pods with fieldSelector spec.nodeName=${node}`);
    }
    const bound = a.name !== "" && graph.nodeOfPod(a.namespace, a.name) === node;
    const verbs: Record<string, string[]> = { "": ["get", "delete"], status: ["get", "update", "patch"] };
    if (bound && verbs[a.subresource]?.includes(a.verb)) return allow(`pod ${a.namespace}/${a.name} is bound to "${node}"`);
    // A pod that is gone: let the request through to its NOT_FOUND, which tells an agent to stop
    // (confirming a deletion, writing a last status), as it does without authorization.
    if (a.name !== "" && verbs[a.subresource]?.includes(a.verb) && !graph.podExists(a.namespace, a.name)) return allow(`pod ${a.namespace}/${a.name} does not exist`);
    return notMine(bound ? `a node may not ${a.verb} ${a.subresource || "pods"} of its pods` : `pod ${a.namespace}/${a.name || "*"} is not bound to node "${node}"`);
  }

  function used(a: RequestAttributes, node: string): Decision {
    const ok = a.subresource === "" ? a.verb === "get" : a.resource === "serviceaccounts" && a.subresource === "token" && a.verb === "create";
    if (ok && a.name !== "" && graph.uses(node, refKey(a.resource, a.namespace, a.name))) return allow(`a pod bound to "${node}" uses ${a.resource} ${a.namespace}/${a.name}`);
    return notMine(`no pod bound to node "${node}" uses ${a.resource} ${a.namespace}/${a.name || "*"}`);
  }

  function persistentVolumes(a: RequestAttributes, node: string): Decision {
    if (a.subresource !== "") return notMine(`a node may not ${a.verb} persistentvolumes/${a.subresource}`);
    if (a.verb === "list" || a.verb === "watch") {
      if (selectsNode(a.fieldSelector, node, PINNED_NODE_FIELD)) return allow(`persistent volumes pinned to "${node}"`);
      return notMine(`node "${node}" may only list and watch persistentvolumes with fieldSelector ${PINNED_NODE_FIELD}=${node}`);
    }
    const pv = a.name === "" ? undefined : volumeByName(a.name);
    if (pv && ["get", "update", "patch"].includes(a.verb) && pinnedNode(pv) === node) return allow(`persistentvolume ${a.name} is pinned to "${node}"`);
    const ref = pv?.spec?.claimRef;
    if (pv && a.verb === "get" && ref && graph.uses(node, refKey("persistentvolumeclaims", ref.namespace, ref.name))) {
      return allow(`a pod bound to "${node}" uses claim ${ref.namespace}/${ref.name} of persistentvolume ${a.name}`);
    }
    return notMine(`no pod bound to node "${node}" uses persistentvolume ${a.name || "*"}, nor is it pinned to the node`);
  }

  const byResource: Record<string, (a: RequestAttributes, node: string) => Decision> = {
    persistentvolumes: persistentVolumes,
    nodes,
    leases,
    pods,
    secrets: used,
    configmaps: used,
    persistentvolumeclaims: used,
    serviceaccounts: used,
  };
  const groups: Record<string, string> = { leases: "coordination.k8s.io" };

  return {
    authorize(a) {
      const node = nodeNameOf(a.user);
      if (node === undefined || a.path !== undefined) return NO_OPINION;
      const check = byResource[a.resource];
      if (!check || a.apiGroup !== (groups[a.resource] ?? "")) return NO_OPINION;
      return check(a, node);
    },
    onPolicyChange: (l) => graph.onChange((change) => l(change && { users: change.nodes.map((n) => NODE_USER_PREFIX + n), object: { resource: "pods", ...change.pod } })),
    close: () => graph.close(),
  };
}

/** Whether a field selector pins spec.nodeName (or `field`) to this node. */
function selectsNode(selector: string | undefined, node: string, field = "spec.nodeName"): boolean {
  if (!selector) return false;
  try {
    return parseFieldSelector(selector).requirements.some((r) => r.field === field && r.operator === "Equals" && r.value === node);
  } catch {
    return false;
  }
}
