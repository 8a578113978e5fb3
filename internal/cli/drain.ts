// What `skiffctl drain` may evict from a node, and the wait for the evicted pods to be gone.
// The filters are kubectl's: every pod goes through all of them; a filter can let the pod go,
// skip it with a warning, or refuse it, and any refusal stops the drain before anything is
// evicted. Pods that already finished (Succeeded, Failed) are always let go.
//
//   daemonset      controlled by a DaemonSet: refused, or skipped with --ignore-daemonsets
//   mirror         a static pod's mirror (annotation kubernetes.io/config.mirror): skipped
//   local storage  has an emptyDir volume: refused, or evicted with --delete-emptydir-data
//   unreplicated   no controller owner reference: refused, or evicted with --force
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName } from "../api/registry.ts";
import type { Api } from "./context.ts";
import { listAllPages } from "../client/pager.ts";

export interface DrainOptions {
  force: boolean;
  ignoreDaemonSets: boolean;
  deleteEmptyDirData: boolean;
}

export interface DrainPlan {
  /** The pods to evict. */
  evict: Pod[];
  /** "deleting Pods that declare no controller: default/bare", one per filter. */
  warnings: string[];
  /** "cannot delete … (use --force to override): default/bare", one per filter. */
  refusals: string[];
}

const MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

type Verdict = { keep: true; warn?: string } | { keep: false; warn?: string; refuse?: string };

const finished = (p: Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
const controllerOf = (p: Pod) => p.metadata?.ownerReferences.find((r) => r.controller);

const filters: ((p: Pod, o: DrainOptions) => Verdict)[] = [
  function daemonSet(p, o) {
    if (controllerOf(p)?.kind !== "DaemonSet" || finished(p)) return { keep: true };
    if (!o.ignoreDaemonSets) return { keep: false, refuse: "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" };
    return { keep: false, warn: "ignoring DaemonSet-managed Pods" };
  },
  function mirror(p) {
    return p.metadata?.annotations[MIRROR_ANNOTATION] === undefined ? { keep: true } : { keep: false };
  },
  function localStorage(p, o) {
    if (finished(p) || !(p.spec?.volumes ?? []).some((v) => v.emptyDir)) return { keep: true };
    if (!o.deleteEmptyDirData) return { keep: false, refuse: "cannot delete Pods with local storage (use --delete-emptydir-data to override)" };
    return { keep: true, warn: "deleting Pods with local storage" };
  },
  function unreplicated(p, o) {
    if (finished(p) || controllerOf(p)) return { keep: true };
    if (!o.force) return { keep: false, refuse: "cannot delete Pods that declare no controller (use --force to override)" };
    return { keep: true, warn: "deleting Pods that declare no controller" };
  },
];

export const podRef = (p: Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

/** Sorts the node's pods into those to evict, warnings and refusals (in the filters' order). */
export function planDrain(pods: Pod[], opts: DrainOptions): DrainPlan {
  // Per filter: message → the pods it is about.
  const warned = filters.map(() => new Map<string, string[]>());
  const refused = filters.map(() => new Map<string, string[]>());
  const note = (m: Map<string, string[]>, msg: string, p: Pod) => m.set(msg, [...(m.get(msg) ?? []), podRef(p)]);
  const evict: Pod[] = [];
  for (const p of pods) {
    let keep = true;
    filters.forEach((f, i) => {
      const v = f(p, opts);
      if (v.warn) note(warned[i], v.warn, p);
      if (!v.keep) {
        keep = false;
        if (v.refuse) note(refused[i], v.refuse, p);
      }
    });
    if (keep) evict.push(p);
  }
  const lines = (ms: Map<string, string[]>[]) => ms.flatMap((m) => [...m].map(([msg, refs]) => `${msg}: ${refs.join(", ")}`));
  return { evict, warnings: lines(warned), refusals: lines(refused) };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/** How often the node's pods are listed while waiting. */
const POLL_MS = 500;

/**
 * Waits until none of `pods` is on `node` any more (a pod of the same name but another uid is a
 * new pod, not the evicted one), calling `gone` for each as it goes. Resolves with the pods still
 * there when `signal` aborts (the caller's time limit), else with none.
 */
export async function waitForEviction(api: Api, node: string, pods: Pod[], signal: AbortSignal, gone: (p: Pod) => void): Promise<Pod[]> {
  const podClient = api.client(kindByName("Pod")!);
  let left = [...pods];
  for (;;) {
    const { items } = await listAllPages(podClient, "", { fieldSelector: `spec.nodeName=${node}` });
    const present = new Set(items.map((p) => p.metadata?.uid));
    for (const p of left.filter((x) => !present.has(x.metadata?.uid))) gone(p);
    left = left.filter((p) => present.has(p.metadata?.uid));
    if (left.length === 0 || signal.aborted) return left;
    await sleep(POLL_MS, signal);
  }
}
