// The watch cache's window of recent events, for watches that resume from a past revision.
// Bounded by count AND bytes, trimmed as soon as either is over (oldest first). Each event keeps
// only the object's stored bytes (the ones storage handed over, shared with the decoded object
// while it is current), never a decoded copy: a resume decodes what it replays, a slice at a time.
import type { EventType } from "./watchcache.ts";

export interface HistoryEntry {
  type: EventType;
  revision: number;
  /** The object's stored bytes after this event (DELETED: the last ones it had). */
  bytes: Uint8Array;
  /** Its stored bytes before this event (MODIFIED, and DELETED when known). */
  prevBytes?: Uint8Array;
}

export interface WatchHistory {
  /** Resumes from a revision below this one have lost events. */
  start(): number;
  push(e: HistoryEntry): void;
  /** Up to `max` entries with a revision above `after`, oldest first. */
  after(after: number, max: number): HistoryEntry[];
  /** Forgets everything: events at or below `revision` are lost (a relist). */
  reset(revision: number): void;
  /** Drops entries at or below `revision` (after storage compaction). */
  compact(revision: number): void;
  size(): number;
  /** What the entries are charged: their bytes (prevBytes too, though usually shared with the entry before) plus a fixed overhead each. */
  bytes(): number;
}

/** Per entry, beyond its bytes: the record, its slot and the Uint8Array objects. */
export const HISTORY_ENTRY_OVERHEAD = 200;

const cost = (e: HistoryEntry) => e.bytes.byteLength + (e.prevBytes?.byteLength ?? 0) + HISTORY_ENTRY_OVERHEAD;

export function createWatchHistory(maxEntries: number, maxBytes: number): WatchHistory {
  // entries[head..] are live; the dead prefix is cut off once it is half the array (amortized O(1)).
  let entries: HistoryEntry[] = [];
  let head = 0;
  let used = 0;
  let start = 0;

  function dropOldest(): void {
    const e = entries[head];
    entries[head++] = undefined as unknown as HistoryEntry;
    used -= cost(e);
    start = e.revision;
    if (head > 1024 && head * 2 > entries.length) {
      entries = entries.slice(head);
      head = 0;
    }
  }

  /** Index of the first live entry with a revision above `rev`. */
  function firstAbove(rev: number): number {
    let lo = head;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (entries[mid].revision <= rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  return {
    start: () => start,
    push(e) {
      entries.push(e);
      used += cost(e);
      while (entries.length - head > maxEntries || (used > maxBytes && entries.length - head > 1)) dropOldest();
    },
    after(after, max) {
      const i = firstAbove(after);
      return entries.slice(i, Math.min(i + max, entries.length));
    },
    reset(revision) {
      entries = [];
      head = 0;
      used = 0;
      start = revision;
    },
    compact(revision) {
      if (revision <= start) return;
      while (head < entries.length && entries[head].revision <= revision) dropOldest();
      start = revision;
    },
    size: () => entries.length - head,
    bytes: () => used,
  };
}
