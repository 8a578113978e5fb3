// Namespace deletion: a namespace marked Terminating has its contents deleted through the
// generic delete (so pods on nodes still stop gracefully), and goes away once it is empty.
// Kubernetes does this in a controller; here the apiserver owns it so that "delete namespace"
// works with nothing else running.
import type { Logger } from "pino";
import type { Kind } from "../api/registry.ts";
import type { Store } from "../storage/store.ts";
import { keyFor } from "./objects.ts";
import type { ResourceOps } from "./resources.ts";

export interface NamespaceFinalizer {
  terminate(name: string): void;
  /** Picks up namespaces left Terminating by a previous apiserver. */
  resume(): Promise<void>;
  stop(): void;
}

export function createNamespaceFinalizer(ops: Map<string, ResourceOps>, store: Store, log?: Logger): NamespaceFinalizer {
  const running = new Set<string>();
  let stopped = false;
  // Looked up when used: the map is filled after this finalizer is made.
  const nsOps = () => ops.get("Namespace")!;
  const namespaced = () => [...ops.values()].filter((o) => o.kind.namespaced);

  /** Deletes what is left; true when nothing is left. */
  async function sweep(ns: string): Promise<boolean> {
    let empty = true;
    for (const o of namespaced()) {
      const { items } = await o.list(ns, "", "");
      for (const item of items) {
        empty = false;
        if (item.metadata?.deletionTimestamp) continue;
        await o.delete(ns, item.metadata!.name).catch((err) => log?.debug({ err: String(err) }, "namespace cleanup"));
      }
    }
    return empty;
  }

  async function run(ns: string): Promise<void> {
    let wait = 200;
    while (!stopped) {
      try {
        if (await sweep(ns)) {
          const kv = await store.get(keyFor(nsOps().kind as Kind, "", ns));
          if (kv) await store.delete(kv.key, kv.modRevision);
          log?.info({ namespace: ns }, "namespace deleted");
          return;
        }
      } catch (err) {
        log?.warn({ namespace: ns, err: String(err) }, "namespace cleanup failed; retrying");
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 5000);
    }
  }

  return {
    terminate(name) {
      if (running.has(name) || stopped) return;
      running.add(name);
      void run(name).finally(() => running.delete(name));
    },
    async resume() {
      const { items } = await nsOps().list("", "", "");
      for (const ns of items) if (ns.metadata?.deletionTimestamp) this.terminate(ns.metadata.name);
    },
    stop() {
      stopped = true;
    },
  };
}
