// Expectations (after Kubernetes' ControllerExpectations + UIDTrackingControllerExpectations): what
// a controller has just asked the API to do and not yet seen in its informer cache. While an owner
// has outstanding expectations, its controller must not act on the cache again: the cache does not
// show the pods it just created (or still shows those it just deleted), and acting on it would
// create (or delete) the same replicas twice. They are lowered as the informer reports the
// creations and deletions, and are forgotten after a timeout in case an event never comes (a pod
// created and deleted again while the watch was down, which a relist collapses to nothing).

export interface ExpectationsOptions {
  /** Outstanding expectations older than this count as satisfied. Default 5 minutes. */
  timeoutMs?: number;
  /** Monotonic clock in ms. Default performance.now. */
  now?: () => number;
}

export interface Expectations {
  /** Nothing outstanding for the owner (or no record, or the record timed out): it may act. */
  satisfied(ownerKey: string): boolean;
  /** The owner is about to create `count` pods (replaces an old record). */
  expectCreations(ownerKey: string, count: number): void;
  /** The owner is about to delete these pods (their keys; replaces an old record). */
  expectDeletions(ownerKey: string, podKeys: readonly string[]): void;
  /** The informer saw one of the owner's pods appear (or a create failed: it will never appear). */
  creationObserved(ownerKey: string, count?: number): void;
  /** The informer saw this pod go (deleted, or marked for deletion). Counted once per pod. */
  deletionObserved(ownerKey: string, podKey: string): void;
  /** The owner is gone. */
  forget(ownerKey: string): void;
  /** What is still expected (undefined: no record), for logs and tests. */
  pending(ownerKey: string): { creations: number; deletions: string[]; ageMs: number } | undefined;
}

interface Expectation {
  creations: number;
  deletions: Set<string>;
  since: number;
}

export const DEFAULT_EXPECTATIONS_TIMEOUT_MS = 5 * 60_000;

export function createExpectations(opts: ExpectationsOptions = {}): Expectations {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXPECTATIONS_TIMEOUT_MS;
  const now = opts.now ?? (() => performance.now());
  const records = new Map<string, Expectation>();

  return {
    satisfied(key) {
      const r = records.get(key);
      if (!r) return true;
      if (r.creations <= 0 && r.deletions.size === 0) return true;
      return now() - r.since > timeoutMs;
    },
    expectCreations(key, count) {
      records.set(key, { creations: count, deletions: new Set(), since: now() });
    },
    expectDeletions(key, podKeys) {
      records.set(key, { creations: 0, deletions: new Set(podKeys), since: now() });
    },
    creationObserved(key, count = 1) {
      const r = records.get(key);
      if (r && r.creations > 0) r.creations = Math.max(0, r.creations - count);
    },
    deletionObserved(key, podKey) {
      records.get(key)?.deletions.delete(podKey);
    },
    forget(key) {
      records.delete(key);
    },
    pending(key) {
      const r = records.get(key);
      return r && { creations: r.creations, deletions: [...r.deletions], ageMs: now() - r.since };
    },
  };
}
