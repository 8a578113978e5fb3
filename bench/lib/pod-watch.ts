// Follows the pods of a namespace through one Watch and notes, per pod, when this process first
// saw it (ADDED), bound to a node (spec.nodeName set), Running (status.phase), and gone (DELETED),
// on the performance.now() clock. A broken stream is resumed from the last resourceVersion seen
// (relisted when that is too old); first sightings keep their times.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { performance } from "node:perf_hooks";
import { onCleanup } from "./cleanup.ts";

export interface PodSighting {
  name: string;
  uid: string;
  added: number;
  bound?: number;
  running?: number;
  deleted?: number;
}

export interface PodWatch {
  /** Resolves once the watch is live (its first BOOKMARK arrived). */
  ready: Promise<void>;
  pods: Map<string, PodSighting>;
  counts(): { added: number; bound: number; running: number; deleted: number };
  /** Resolves with the sighting once the pod is Running; rejects after timeoutMs with its last status. */
  running(name: string, timeoutMs: number): Promise<PodSighting>;
  /** Called on every first sighting of a state. */
  onChange(fn: (s: PodSighting, what: "added" | "bound" | "running" | "deleted") => void): void;
  stop(): void;
}

export function watchPods(client: ResourceClient<Pod>, namespace: string): PodWatch {
  const pods = new Map<string, PodSighting>();
  const last = new Map<string, Pod>();
  const waiters = new Map<string, () => void>();
  const listeners: ((s: PodSighting, what: "added" | "bound" | "running" | "deleted") => void)[] = [];
  const n = { added: 0, bound: 0, running: 0, deleted: 0 };
  const abort = new AbortController();
  onCleanup(() => abort.abort());
  let markReady!: () => void;
  let failReady!: (err: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => ((markReady = resolve), (failReady = reject)));
  ready.catch(() => {});
  let live = false;

  const note = (s: PodSighting, what: "added" | "bound" | "running" | "deleted") => {
    n[what]++;
    for (const l of listeners) l(s, what);
  };

  const see = (type: string, p: Pod, at: number) => {
    const name = p.metadata!.name;
    let s = pods.get(name);
    if (!s || s.uid !== p.metadata!.uid) {
      s = { name, uid: p.metadata!.uid, added: at };
      pods.set(name, s);
      note(s, "added");
    }
    last.set(name, p);
    if (s.bound === undefined && p.spec?.nodeName) {
      s.bound = at;
      note(s, "bound");
    }
    if (s.running === undefined && p.status?.phase === "Running") {
      s.running = at;
      note(s, "running");
      waiters.get(name)?.();
    }
    if (type === "DELETED" && s.deleted === undefined) {
      s.deleted = at;
      note(s, "deleted");
    }
  };

  void (async () => {
    let rv = "";
    while (!abort.signal.aborted) {
      try {
        for await (const ev of client.watch(namespace, { resourceVersion: rv, signal: abort.signal })) {
          const at = performance.now();
          rv = ev.object.metadata?.resourceVersion || rv;
          if (ev.type === "BOOKMARK") {
            if (!live) {
              live = true;
              markReady();
            }
            continue;
          }
          see(ev.type, ev.object, at);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        if (!live) {
          failReady(err);
          return;
        }
        // OUT_OF_RANGE: too old to resume, relist; anything else: resume where we were.
        if (/out.of.range|too old/i.test(String(err))) rv = "";
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();

  return {
    ready,
    pods,
    counts: () => ({ ...n }),
    running(name, timeoutMs) {
      const s = pods.get(name);
      if (s?.running !== undefined) return Promise.resolve(s);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(name);
          const p = last.get(name);
          const status = p?.status ? JSON.stringify(p.status, (_k, v) => (typeof v === "bigint" ? String(v) : v)) : "never seen";
          reject(new Error(`pod ${namespace}/${name} not Running after ${timeoutMs} ms; last status: ${status}`));
        }, timeoutMs);
        waiters.set(name, () => {
          clearTimeout(timer);
          waiters.delete(name);
          resolve(pods.get(name)!);
        });
      });
    },
    onChange(fn) {
      listeners.push(fn);
    },
    stop: () => abort.abort(),
  };
}
