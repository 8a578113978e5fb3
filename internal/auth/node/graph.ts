// Which objects each node may read because a pod bound to it uses them: a graph kept from the
// apiserver's pod watch cache (Kubernetes' node authorizer graph, reduced to what Skiff has).
//
//   pod (spec.nodeName = N) ─► Secrets, ConfigMaps, PVCs, its ServiceAccount ─► readable by N
//
// Updated synchronously with the cache, so an agent that sees a pod through its watch can
// already read what the pod uses.
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import { keyFor } from "../../apiserver/objects.ts";
import type { WatchCache } from "../../apiserver/watchcache.ts";

/** "secrets/<ns>/<name>": the resource, namespace and name of an object a pod uses. */
export type RefKey = string;

export const refKey = (resource: string, namespace: string, name: string): RefKey => `${resource}/${namespace}/${name}`;

/** Every object a pod uses, as ref keys. Add new reference fields here (projected volumes…). */
export function podReferences(pod: Pod): RefKey[] {
  const ns = pod.metadata?.namespace ?? "";
  const spec = pod.spec;
  if (!spec) return [];
  const out = new Set<RefKey>();
  const secret = (n: string | undefined) => n && out.add(refKey("secrets", ns, n));
  const configMap = (n: string | undefined) => n && out.add(refKey("configmaps", ns, n));
  for (const v of spec.volumes) {
    secret(v.secret?.secretName);
    configMap(v.configMap?.name);
    for (const s of v.projected?.sources ?? []) {
      secret(s.secret?.name);
      configMap(s.configMap?.name);
    }
    if (v.persistentVolumeClaim?.claimName) out.add(refKey("persistentvolumeclaims", ns, v.persistentVolumeClaim.claimName));
  }
  for (const c of [...spec.initContainers, ...spec.containers]) {
    for (const e of c.env) {
      secret(e.valueFrom?.secretKeyRef?.name);
      configMap(e.valueFrom?.configMapKeyRef?.name);
    }
    for (const e of c.envFrom) {
      secret(e.secretRef?.name);
      configMap(e.configMapRef?.name);
    }
  }
  for (const s of spec.imagePullSecrets) secret(s.name);
  out.add(refKey("serviceaccounts", ns, spec.serviceAccountName || "default"));
  return [...out];
}

export interface NodeGraph {
  /** Whether a pod bound to `node` uses this object. */
  uses(node: string, ref: RefKey): boolean;
  /** The node a pod ("ns/name") is bound to, or undefined. */
  nodeOfPod(namespace: string, name: string): string | undefined;
  /** Whether the pod exists at all (bound or not). */
  podExists(namespace: string, name: string): boolean;
  /**
   * Calls `listener` after a change of what nodes may do: with the nodes whose pods changed and
   * the pod, or with nothing when everything may have changed (the cache was rebuilt).
   */
  onChange(listener: (change?: NodeGraphChange) => void): () => void;
  close(): void;
}

/** A pod's binding or references changed: what `nodes` may read, and answers about the pod. */
export interface NodeGraphChange {
  nodes: string[];
  pod: { namespace: string; name: string };
}

interface PodEntry {
  node: string;
  refs: RefKey[];
}

export function createNodeGraph(pods: Pick<WatchCache, "kind" | "get" | "list" | "onChange">): NodeGraph {
  const entries = new Map<string, PodEntry>();
  // node → ref → how many of its pods use it
  const refsByNode = new Map<string, Map<RefKey, number>>();
  const listeners = new Set<(change?: NodeGraphChange) => void>();

  function remove(key: string): void {
    const e = entries.get(key);
    if (!e) return;
    entries.delete(key);
    const counts = refsByNode.get(e.node);
    for (const r of e.refs) {
      const n = (counts?.get(r) ?? 1) - 1;
      if (n <= 0) counts?.delete(r);
      else counts!.set(r, n);
    }
    if (counts?.size === 0) refsByNode.delete(e.node);
  }
  function put(obj: ApiObject): void {
    const pod = obj as Pod;
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    remove(key);
    const node = pod.spec?.nodeName ?? "";
    if (node === "") return;
    const refs = podReferences(pod);
    entries.set(key, { node, refs });
    let counts = refsByNode.get(node);
    if (!counts) refsByNode.set(node, (counts = new Map()));
    for (const r of refs) counts.set(r, (counts.get(r) ?? 0) + 1);
  }
  const rebuild = () => {
    entries.clear();
    refsByNode.clear();
    for (const p of pods.list()) put(p);
  };
  rebuild();
  const notify = (change?: NodeGraphChange) => {
    for (const l of listeners) l(change);
  };
  const sameRefs = (a: RefKey[] | undefined, b: RefKey[] | undefined) => (a ?? []).length === (b ?? []).length && (a ?? []).every((r, i) => r === b?.[i]);
  const off = pods.onChange((ev) => {
    if (!ev) {
      rebuild();
      notify();
      return;
    }
    // The same spec object (a status write shares it with the object before): nothing a node may
    // do changed, and its references need not be walked again (one such write per pod start, or more).
    if (ev.type === "MODIFIED" && ev.prev?.spec !== undefined && ev.prev.spec === ev.obj.spec) return;
    const namespace = ev.obj.metadata?.namespace ?? "";
    const name = ev.obj.metadata?.name ?? "";
    const key = `${namespace}/${name}`;
    const before = entries.get(key);
    if (ev.type === "DELETED") remove(key);
    else put(ev.obj);
    const after = entries.get(key);
    // A status write changes nothing a node may do: only a new or gone pod, a binding, or other references do.
    if (ev.type === "MODIFIED" && before?.node === after?.node && sameRefs(before?.refs, after?.refs)) return;
    const nodes = [...new Set([before?.node, after?.node].filter((n): n is string => !!n))];
    notify({ nodes, pod: { namespace, name } });
  });

  return {
    uses: (node, ref) => (refsByNode.get(node)?.get(ref) ?? 0) > 0,
    nodeOfPod: (namespace, name) => entries.get(`${namespace}/${name}`)?.node,
    podExists: (namespace, name) => pods.get(keyFor(pods.kind, namespace, name)) !== undefined,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      off();
      listeners.clear();
    },
  };
}
