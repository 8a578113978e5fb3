// PodInfo: what scheduling needs to know about a pod, computed once per pod object (informer
// objects are immutable, so a WeakMap keyed by the object is a safe cache).
import type { PodAffinityTerm, Pod, Toleration } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { labelSelectorFromObject, NOTHING, type LabelSelector } from "../../api/selector.ts";
import { nonZeroRequests, podRequests, type ResourceList } from "./resources.ts";

export interface HostPort {
  /** "" and "0.0.0.0" both mean every address. */
  ip: string;
  protocol: string;
  port: number;
}

/** A required pod (anti-)affinity term, ready to match pods. */
export interface AffinityTerm {
  selector: LabelSelector;
  /** The namespaces whose pods the term looks at (the pod's own when the term names none). */
  namespaces: ReadonlySet<string>;
  topologyKey: string;
}

export interface PodInfo {
  readonly pod: Pod;
  readonly uid: string;
  /** namespace/name */
  readonly key: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Effective requests (without "pods"; every pod counts one of those). */
  readonly requests: ResourceList;
  /** cpu (milli) and memory (bytes) with kube's defaults for missing requests: scoring only. */
  readonly nonZero: { cpu: number; memory: number };
  readonly hostPorts: readonly HostPort[];
  readonly tolerations: readonly Toleration[];
  /** Pods of one workload (same controller, else same namespace and labels) share this key. */
  readonly workload: string | undefined;
  readonly requiredAffinity: readonly AffinityTerm[];
  readonly requiredAntiAffinity: readonly AffinityTerm[];
  readonly priority: number;
}

const cache = new WeakMap<Pod, PodInfo>();

export function podInfoOf(pod: Pod): PodInfo {
  let info = cache.get(pod);
  if (!info) {
    info = computePodInfo(pod);
    cache.set(pod, info);
  }
  return info;
}

export function podKey(pod: Pod): string {
  return `${pod.metadata?.namespace ?? ""}/${pod.metadata?.name ?? ""}`;
}

/** Succeeded and Failed pods hold no resources. */
export function isTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed";
}

/** Pods of one workload share it: the controller owner's uid, else the namespace and labels. */
export function workloadKey(pod: Pod): string | undefined {
  const m = pod.metadata;
  const refs = m?.ownerReferences ?? [];
  const owner = refs.find((r) => r.controller) ?? refs[0];
  if (owner) return internalized(`owner:${owner.uid || `${owner.kind}/${owner.name}`}`);
  const labels = Object.entries(m?.labels ?? {});
  if (labels.length === 0) return undefined;
  labels.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return internalized(`labels:${m?.namespace ?? ""}:${labels.map(([k, v]) => `${k}=${v}`).join(",")}`);
}

/**
 * The engine's one shared copy of s (a property key is internalized; the engine's string table
 * forgets it once unused). Every node's per-workload counts are looked up with the pod's key for
 * each node scored: with one copy per workload the lookup compares pointers, with a fresh
 * concatenation per pod it compared characters (measured: the workload score cost 5× more).
 */
function internalized(s: string): string {
  for (const k in { [s]: 0 }) return k;
  return s;
}

function hostPorts(pod: Pod): HostPort[] {
  const out: HostPort[] = [];
  const hostNetwork = pod.spec?.hostNetwork ?? false;
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    for (const p of c.ports) {
      // With the host's network, a container port is a host port.
      const port = p.hostPort || (hostNetwork ? p.containerPort : 0);
      if (port > 0) out.push({ ip: p.hostIp, protocol: p.protocol || "TCP", port });
    }
  }
  return out;
}

function affinityTerms(terms: readonly PodAffinityTerm[] | undefined, namespace: string): AffinityTerm[] {
  return (terms ?? []).map((t) => {
    let selector: LabelSelector;
    try {
      selector = labelSelectorFromObject(t.labelSelector ?? null);
    } catch {
      selector = NOTHING; // validation keeps these out; never let a bad one match everything
    }
    return { selector, namespaces: new Set(t.namespaces.length > 0 ? t.namespaces : [namespace]), topologyKey: t.topologyKey };
  });
}

function computePodInfo(pod: Pod): PodInfo {
  const namespace = pod.metadata?.namespace ?? "";
  const affinity = pod.spec?.affinity;
  return {
    pod,
    uid: pod.metadata?.uid ?? "",
    key: podKey(pod),
    namespace,
    labels: pod.metadata?.labels ?? {},
    requests: podRequests(pod.spec),
    nonZero: nonZeroRequests(pod.spec),
    hostPorts: hostPorts(pod),
    tolerations: pod.spec?.tolerations ?? [],
    workload: workloadKey(pod),
    requiredAffinity: affinityTerms(affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, namespace),
    requiredAntiAffinity: affinityTerms(affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, namespace),
    priority: pod.spec?.priority ?? 0,
  };
}
