import { describe, expect, it } from "vitest";
import { createPushQueue } from "./push-queue.ts";

describe("createPushQueue", () => {
  it("yields pushed items in order, waiting for more, until end", async () => {
    const q = createPushQueue<number>();
    const seen: number[] = [];
    const done = (async () => {
      for await (const n of q) seen.push(n);
    })();
    q.push(1);
    await new Promise((r) => setTimeout(r, 5));
    q.push(2);
    q.push(3);
    q.end();
    await done;
    expect(seen).toEqual([1, 2, 3]);
    expect(() => q.push(4)).toThrow(/after end/);
  });
});
