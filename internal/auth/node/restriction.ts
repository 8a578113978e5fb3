// Node restriction at admission (Kubernetes' NodeRestriction plugin): what the node authorizer
// cannot see from request attributes alone because it is in the object written. A node may
// create only its own Node and Lease, may not touch labels under node-restriction.kubernetes.io/
// (operators use them to pin workloads to trusted nodes), and may not change its taints or
// unschedulable flag after registering (those belong to the operator and the controllers).
import { Code, ConnectError } from "@connectrpc/connect";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import type { UserInfo } from "../types.ts";
import { nodeNameOf } from "./authorizer.ts";

export const RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/";

export interface AdmissionRequest {
  user: UserInfo;
  /** The registry's kind name: "Node", "Lease". */
  kind: string;
  operation: "create" | "update" | "delete";
  /** The object as it will be stored (create, update). */
  object?: ApiObject;
  /** The object as stored before (update, delete). */
  oldObject?: ApiObject;
}

/** Refuses (PERMISSION_DENIED, saying why) what a node may not write; no-op for everyone else. */
export function admitNodeRestriction(req: AdmissionRequest): void {
  const node = nodeNameOf(req.user);
  if (node === undefined) return;
  const problem = req.kind === "Node" ? nodeProblem(node, req) : req.kind === "Lease" ? leaseProblem(node, req) : req.kind === "PersistentVolume" ? volumeProblem(req) : undefined;
  if (problem) throw new ConnectError(`node "${node}" is not allowed to ${problem}`, Code.PermissionDenied);
}

function nodeProblem(node: string, req: AdmissionRequest): string | undefined {
  const obj = (req.object ?? req.oldObject) as Node | undefined;
  const name = obj?.metadata?.name ?? "";
  if (name !== node) return `${req.operation} Node "${name}": a node may only write its own Node`;
  const labels = (o: ApiObject | undefined) => Object.entries(o?.metadata?.labels ?? {}).filter(([k]) => k.startsWith(RESTRICTED_LABEL_PREFIX));
  const before = new Map(labels(req.oldObject));
  const after = new Map(labels(req.object));
  for (const k of new Set([...before.keys(), ...after.keys()])) {
    if (before.get(k) !== after.get(k)) return `set or remove the label "${k}": labels under ${RESTRICTED_LABEL_PREFIX} are the operator's`;
  }
  if (req.operation === "update" && req.object && req.oldObject) {
    const was = (req.oldObject as Node).spec;
    const now = (req.object as Node).spec;
    if (json(was?.taints ?? []) !== json(now?.taints ?? [])) return "change spec.taints of its Node: taints are the operator's and the controllers'";
    if ((was?.unschedulable ?? false) !== (now?.unschedulable ?? false)) return "change spec.unschedulable of its Node (cordon and uncordon are the operator's)";
  }
  return undefined;
}

function leaseProblem(node: string, req: AdmissionRequest): string | undefined {
  const name = (req.object ?? req.oldObject)?.metadata?.name ?? "";
  return name === node ? undefined : `${req.operation} Lease "${name}": a node may only write the Lease named after it`;
}

/** A node's agent removes the finalizer of a local-path volume whose directory it removed, nothing else. */
function volumeProblem(req: AdmissionRequest): string | undefined {
  const name = (req.object ?? req.oldObject)?.metadata?.name ?? "";
  if (req.operation !== "update" || !req.object || !req.oldObject) return `${req.operation} PersistentVolume "${name}"`;
  const strip = (o: ApiObject) => ({ spec: o.spec, labels: o.metadata?.labels, annotations: o.metadata?.annotations });
  const removedOnly = req.object.metadata!.finalizers.every((f) => req.oldObject!.metadata!.finalizers.includes(f));
  if (!removedOnly || json(strip(req.object)) !== json(strip(req.oldObject))) return `change PersistentVolume "${name}" beyond removing its finalizers`;
  return undefined;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
