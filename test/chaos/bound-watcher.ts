// A pod watcher for rollouts under failure: follows the pods matching a selector, resuming (or
// relisting when too old) after errors, and keeps the largest live counts it saw — in total, per
// test phase and per owning ReplicaSet — so a test can check a rollout never exceeded its bounds.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ResourceClient } from "../../internal/client/resource-client.ts";

/** Follows the pods matching `labelSelector`, resuming after errors, and keeps the largest live counts it saw. */
export function createBoundWatcher(pods: ResourceClient<Pod>, labelSelector: string) {
  const live = new Map<string, string>(); // pod uid → owning ReplicaSet, while not terminating
  const maxPerRs = new Map<string, number>();
  let maxTotal = 0;
  const maxTotalByPhase = new Map<string, number>();
  let relists = 0;
  let phase = "first rollout";
  let worst = "";
  const abort = new AbortController();
  let markLive!: () => void;
  const ready = new Promise<void>((r) => (markLive = r));
  const see = (type: string, p: Pod) => {
    const uid = p.metadata!.uid;
    const gone = type === "DELETED" || p.metadata!.deletionTimestamp !== undefined || p.status?.phase === "Failed" || p.status?.phase === "Succeeded";
    if (gone) live.delete(uid);
    else live.set(uid, p.metadata!.ownerReferences[0]?.name ?? "-");
    const counts = new Map<string, number>();
    for (const rs of live.values()) counts.set(rs, (counts.get(rs) ?? 0) + 1);
    if (live.size > maxTotal) worst = `${live.size} live pods during the ${phase}: ${JSON.stringify(Object.fromEntries(counts))}`;
    maxTotal = Math.max(maxTotal, live.size);
    maxTotalByPhase.set(phase, Math.max(maxTotalByPhase.get(phase) ?? 0, live.size));
    for (const [rs, n] of counts) maxPerRs.set(rs, Math.max(maxPerRs.get(rs) ?? 0, n));
  };
  void (async () => {
    let rv = "";
    while (!abort.signal.aborted) {
      try {
        if (rv === "") {
          // First, or too old to resume (a restarted apiserver's watch cache starts at etcd's
          // current revision): the list is the state to continue from.
          const list = await pods.list("default", { labelSelector });
          live.clear();
          for (const p of list.items) see("ADDED", p);
          rv = list.resourceVersion;
        }
        for await (const ev of pods.watch("default", { resourceVersion: rv, signal: abort.signal, labelSelector })) {
          rv = ev.object.metadata?.resourceVersion || rv;
          if (ev.type === "BOOKMARK") markLive();
          else see(ev.type, ev.object);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (ConnectError.from(err).code === Code.OutOfRange) rv = "";
        relists += rv === "" ? 1 : 0;
        await new Promise((r) => setTimeout(r, 200)); // the apiserver is down: resume where we were
      }
    }
  })();
  return {
    ready,
    maxTotal: () => maxTotal,
    maxTotalByPhase,
    /** The largest sample, where it was taken and how it split by ReplicaSet. */
    worst: () => worst,
    setPhase: (p: string) => (phase = p),
    maxPerRs,
    relists: () => relists,
    stop: () => abort.abort(),
  };
}

