import { describe, expect, it } from "vitest";
import { createExpectations } from "./expectations.ts";

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("expectations", () => {
  it("are satisfied with no record, and once every create and delete was observed", () => {
    const c = clock();
    const e = createExpectations({ now: c.now });
    expect(e.satisfied("ns/rs")).toBe(true);
    e.expectCreations("ns/rs", 2);
    expect(e.satisfied("ns/rs")).toBe(false);
    e.creationObserved("ns/rs");
    expect(e.satisfied("ns/rs")).toBe(false);
    e.creationObserved("ns/rs");
    expect(e.satisfied("ns/rs")).toBe(true);
    e.creationObserved("ns/rs"); // an extra (adopted, or someone else's) pod does not go negative
    expect(e.pending("ns/rs")?.creations).toBe(0);

    e.expectDeletions("ns/rs", ["ns/a", "ns/b"]);
    expect(e.satisfied("ns/rs")).toBe(false);
    e.deletionObserved("ns/rs", "ns/a");
    e.deletionObserved("ns/rs", "ns/a"); // marked for deletion, then deleted: counted once
    expect(e.satisfied("ns/rs")).toBe(false);
    e.deletionObserved("ns/rs", "ns/other");
    expect(e.pending("ns/rs")?.deletions).toEqual(["ns/b"]);
    e.deletionObserved("ns/rs", "ns/b");
    expect(e.satisfied("ns/rs")).toBe(true);
  });

  it("lowering by a count accounts for creates that failed or were skipped", () => {
    const e = createExpectations();
    e.expectCreations("k", 7);
    e.creationObserved("k", 4);
    e.creationObserved("k", 3);
    expect(e.satisfied("k")).toBe(true);
  });

  it("time out after 5 minutes by default, counted from when they were set", () => {
    const c = clock();
    const e = createExpectations({ now: c.now });
    e.expectCreations("k", 1);
    c.advance(5 * 60_000);
    expect(e.satisfied("k")).toBe(false);
    c.advance(1);
    expect(e.satisfied("k")).toBe(true);
    e.expectDeletions("k", ["p"]); // a new record starts a new clock
    expect(e.satisfied("k")).toBe(false);
    expect(e.pending("k")?.ageMs).toBe(0);
  });

  it("are per owner and forgotten with it", () => {
    const e = createExpectations();
    e.expectCreations("a", 1);
    expect(e.satisfied("b")).toBe(true);
    e.forget("a");
    expect(e.satisfied("a")).toBe(true);
    expect(e.pending("a")).toBeUndefined();
  });
});
