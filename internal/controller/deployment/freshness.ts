// Remembers what this controller wrote until its informers have seen it, so a reconcile never
// decides from a cache older than its own last writes. Without it, a reconcile triggered by one
// informer (say, the Deployment's status write) may run before another informer delivered our
// scale-down of an old ReplicaSet, count that RS's pods as still available, and scale a second
// old RS down past maxUnavailable: writes are conditional per object, decisions span objects.
import { compareResourceVersions } from "../../client/informer.ts";

interface Written {
  /** The resource version we wrote, or "" for a delete. */
  rv: string;
  /** The Deployment whose reconcile must wait for it. */
  owner: string;
  at: number;
}

export interface Freshness {
  /** We wrote `objKey` (kind-qualified) at `rv` ("" = deleted it) on behalf of `owner`. */
  wrote(objKey: string, rv: string, owner: string): void;
  /** An informer delivered this object (`deleted`: its deletion). */
  observed(objKey: string, rv: string, deleted: boolean): void;
  /** Whether every write made for `owner` is in the caches; `cachedRv` reads the cache. */
  settled(owner: string, cachedRv: (objKey: string) => string | undefined): boolean;
}

/** `maxWaitMs`: a write not seen by then is given up on (a missed event must not wedge a key). */
export function createFreshness(maxWaitMs = 10_000, now: () => number = Date.now): Freshness {
  const written = new Map<string, Written>();
  const atLeast = (seen: string, wanted: string) => (compareResourceVersions(seen, wanted) ?? 0) >= 0;
  return {
    wrote(objKey, rv, owner) {
      written.set(objKey, { rv, owner, at: now() });
    },
    observed(objKey, rv, deleted) {
      const w = written.get(objKey);
      if (!w) return;
      if (deleted || (w.rv !== "" && atLeast(rv, w.rv))) written.delete(objKey);
    },
    settled(owner, cachedRv) {
      for (const [key, w] of written) {
        if (w.owner !== owner) continue;
        if (now() - w.at > maxWaitMs) {
          written.delete(key);
          continue;
        }
        const cur = cachedRv(key);
        const seen = w.rv === "" ? cur === undefined : cur !== undefined && atLeast(cur, w.rv);
        if (!seen) return false;
        written.delete(key);
      }
      return true;
    },
  };
}
