// The memory budget of watch buffers: events a watcher was given but its client has not taken
// yet. Each watcher may hold perWatcherBytes; all of them together totalBytes. A watcher over its
// own share, or the largest holders when the total is over, are cut: their buffers are dropped at
// once and their clients get RESOURCE_EXHAUSTED "resume from …" when they next read.
//
// An event costs its object's stored size plus a fixed overhead, charged to every watcher holding
// it. Objects are shared between watchers, so this over-counts real memory; it is the bound that
// matters: a buffer can keep an object alive after the cache itself has let it go.

export interface BudgetHolder {
  /** Bytes this holder is charged for now. */
  bytes: number;
  /** Drops the buffer (refunding it) and ends the watch; called by the budget when over the total. */
  cut(reason: "total"): void;
}

export interface WatchBudget {
  readonly perWatcherBytes: number;
  readonly totalBytes: number;
  /** Bytes charged to all holders. */
  used(): number;
  add(h: BudgetHolder): void;
  remove(h: BudgetHolder): void;
  /** Charges (or, negative, refunds) a holder; cuts the largest holders when the total is over. */
  charge(h: BudgetHolder, bytes: number): void;
  /** Watchers cut, by reason, since start. */
  cuts: { watcher: number; total: number };
}

export interface WatchBudgetOptions {
  perWatcherBytes?: number;
  totalBytes?: number;
}

/** Per buffered event, beyond the object's bytes: the event record and its slot. */
export const EVENT_OVERHEAD_BYTES = 64;

export function createWatchBudget(opts: WatchBudgetOptions = {}): WatchBudget {
  const perWatcherBytes = opts.perWatcherBytes ?? 8 * 1024 * 1024;
  const totalBytes = opts.totalBytes ?? 512 * 1024 * 1024;
  const holders = new Set<BudgetHolder>();
  let used = 0;
  const cuts = { watcher: 0, total: 0 };

  function relieve(): void {
    // Cut the largest buffers first, down to 90%: one slow client, not everyone, pays.
    const target = totalBytes * 0.9;
    const bySize = [...holders].filter((h) => h.bytes > 0).sort((a, b) => b.bytes - a.bytes);
    for (const h of bySize) {
      if (used <= target) break;
      cuts.total++;
      h.cut("total");
    }
  }

  return {
    perWatcherBytes,
    totalBytes,
    used: () => used,
    add: (h) => void holders.add(h),
    remove(h) {
      if (!holders.delete(h)) return;
      used -= h.bytes;
      h.bytes = 0;
    },
    charge(h, bytes) {
      h.bytes += bytes;
      used += bytes;
      if (bytes > 0 && used > totalBytes) relieve();
    },
    cuts,
  };
}
