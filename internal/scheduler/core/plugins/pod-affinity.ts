// Inter-pod affinity, required terms only. A term names pods (label selector + namespaces) and a
// topology key; a node's domain is its value for that key (kubernetes.io/hostname falls back to
// the node's name). Three checks, each prepared once per pod by one pass over the counted pods:
// - the pod's anti-affinity: no matching pod in the node's domain;
// - existing pods' anti-affinity (symmetry): the pod must not match a term of a pod in the domain;
// - the pod's affinity: a matching pod in the node's domain for every term — except that the
//   first pod of a group that matches its own terms may go anywhere (else it could never start).
import { matchesLabels, requirementsForIndex } from "../../../api/selector.ts";
import type { FilterPlugin, Snapshot } from "../framework.ts";
import { labelPair, topologyValue, type NodeInfo } from "../node-info.ts";
import type { AffinityTerm, PodInfo } from "../pod-info.ts";

export const REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";
export const REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";
export const REASON_AFFINITY = "node(s) didn't match pod affinity rules";

export function termMatchesPod(term: AffinityTerm, p: PodInfo): boolean {
  return term.namespaces.has(p.namespace) && matchesLabels(term.selector, p.labels);
}

/**
 * Per term and namespace, the podLabels keys a matching pod must have. A node lacking any of
 * them cannot hold a match; when the term is a single exact requirement, having it is a match.
 */
function indexPlan(term: AffinityTerm): { pairs: string[][]; exact: boolean } {
  const reqs = requirementsForIndex(term.selector);
  return {
    pairs: [...term.namespaces].map((ns) => reqs.map((r) => labelPair(ns, r.key, r.value))),
    exact: reqs.length === 1 && term.selector.requirements.length === 1,
  };
}

function nodeHasMatch(node: NodeInfo, term: AffinityTerm, plan: ReturnType<typeof indexPlan>, self: PodInfo): boolean {
  let candidate = false;
  for (const pairs of plan.pairs) {
    if (pairs.every((pair) => node.podLabels.has(pair))) {
      candidate = true;
      break;
    }
  }
  if (!candidate) return false;
  if (plan.exact && !node.pods.has(self.uid)) return true;
  for (const p of node.pods.values()) if (p.uid !== self.uid && termMatchesPod(term, p)) return true;
  return false;
}

/** Per term: the topology values of the domains holding at least one matching pod. */
function domainsWithMatches(terms: readonly AffinityTerm[], snapshot: Snapshot, self: PodInfo): Set<string>[] {
  const out = terms.map(() => new Set<string>());
  if (terms.length === 0) return out;
  const plans = terms.map(indexPlan);
  for (const node of snapshot.nodes) {
    if (node.podCount === 0) continue;
    for (let i = 0; i < terms.length; i++) {
      const value = topologyValue(node, terms[i].topologyKey);
      if (value !== undefined && !out[i].has(value) && nodeHasMatch(node, terms[i], plans[i], self)) out[i].add(value);
    }
  }
  return out;
}

/** topology key → values of domains where an existing pod's anti-affinity rejects this pod. */
function domainsRejectingPod(snapshot: Snapshot, pod: PodInfo): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  if (snapshot.podsWithRequiredAntiAffinity === 0) return out;
  for (const node of snapshot.nodes) {
    if (node.podsWithAntiAffinity.size === 0) continue;
    for (const existing of node.podsWithAntiAffinity) {
      for (const term of existing.requiredAntiAffinity) {
        if (!termMatchesPod(term, pod)) continue;
        const value = topologyValue(node, term.topologyKey);
        if (value === undefined) continue;
        let set = out.get(term.topologyKey);
        if (!set) out.set(term.topologyKey, (set = new Set()));
        set.add(value);
      }
    }
  }
  return out;
}

export const interPodAffinity: FilterPlugin = {
  name: "InterPodAffinity",
  prepare(pod, snapshot) {
    const rejecting = domainsRejectingPod(snapshot, pod);
    const anti = pod.requiredAntiAffinity;
    const affinity = pod.requiredAffinity;
    if (rejecting.size === 0 && anti.length === 0 && affinity.length === 0) return undefined;
    const antiDomains = domainsWithMatches(anti, snapshot, pod);
    const affinityDomains = domainsWithMatches(affinity, snapshot, pod);
    const firstOfGroup =
      affinity.length > 0 && affinityDomains.every((s) => s.size === 0) && affinity.every((t) => termMatchesPod(t, pod));
    return (node) => {
      for (const [key, values] of rejecting) {
        const v = topologyValue(node, key);
        if (v !== undefined && values.has(v)) return [REASON_EXISTING_ANTI_AFFINITY];
      }
      for (let i = 0; i < anti.length; i++) {
        const v = topologyValue(node, anti[i].topologyKey);
        if (v !== undefined && antiDomains[i].has(v)) return [REASON_ANTI_AFFINITY];
      }
      if (!firstOfGroup) {
        for (let i = 0; i < affinity.length; i++) {
          const v = topologyValue(node, affinity[i].topologyKey);
          if (v === undefined || !affinityDomains[i].has(v)) return [REASON_AFFINITY];
        }
      }
      return undefined;
    };
  },
};
