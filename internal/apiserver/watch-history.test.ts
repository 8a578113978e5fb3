// The watch history is bounded by count and by bytes, trimmed oldest first as soon as either is
// over, and says from which revision on a resume is still complete.
import { describe, expect, it } from "vitest";
import { createWatchHistory, HISTORY_ENTRY_OVERHEAD, type HistoryEntry } from "./watch-history.ts";

const entry = (revision: number, size = 100): HistoryEntry => ({ type: "MODIFIED", revision, bytes: new Uint8Array(size) });
const revisions = (es: HistoryEntry[]) => es.map((e) => e.revision);

describe("watch history", () => {
  it("keeps at most maxEntries, dropping the oldest at once", () => {
    const h = createWatchHistory(3, 1 << 30);
    for (let rev = 1; rev <= 5; rev++) h.push(entry(rev));
    expect(h.size()).toBe(3);
    expect(revisions(h.after(0, 10))).toEqual([3, 4, 5]);
    // Events up to 2 are gone: a resume from 2 is complete, from 1 is not.
    expect(h.start()).toBe(2);
  });

  it("keeps at most maxBytes, whatever the count", () => {
    const per = 1000 + HISTORY_ENTRY_OVERHEAD;
    const h = createWatchHistory(10_000, 3 * per);
    for (let rev = 1; rev <= 50; rev++) h.push(entry(rev, 1000));
    expect(h.size()).toBe(3);
    expect(h.bytes()).toBe(3 * per);
    expect(h.start()).toBe(47);
    // One object larger than the whole bound is still kept (alone): the newest event is never lost.
    h.push(entry(51, 10 * per));
    expect(revisions(h.after(0, 10))).toEqual([51]);
  });

  it("hands out the events after a revision a slice at a time", () => {
    const h = createWatchHistory(5000, 1 << 30);
    for (let rev = 10; rev < 4010; rev += 2) h.push(entry(rev));
    expect(revisions(h.after(10, 3))).toEqual([12, 14, 16]);
    expect(revisions(h.after(13, 2))).toEqual([14, 16]);
    expect(h.after(4008, 10)).toEqual([]);
  });

  it("compaction drops what storage no longer has; a reset forgets everything", () => {
    const h = createWatchHistory(100, 1 << 30);
    for (let rev = 1; rev <= 10; rev++) h.push(entry(rev));
    h.compact(6);
    expect([h.start(), ...revisions(h.after(0, 100))]).toEqual([6, 7, 8, 9, 10]);
    h.compact(3); // older than what is kept: nothing changes
    expect(h.start()).toBe(6);
    h.reset(20);
    expect([h.start(), h.size(), h.bytes()]).toEqual([20, 0, 0]);
  });
});
