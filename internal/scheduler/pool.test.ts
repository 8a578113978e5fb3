import { describe, expect, it } from "vitest";
import { createPool } from "./pool.ts";

describe("pool", () => {
  it("never runs more than its size at once, and run() waits only for a slot", async () => {
    const pool = createPool(2);
    let running = 0;
    let peak = 0;
    const releases: (() => void)[] = [];
    const task = () =>
      new Promise<void>((resolve) => {
        running++;
        peak = Math.max(peak, running);
        releases.push(() => {
          running--;
          resolve();
        });
      });
    await pool.run(task);
    await pool.run(task);
    let thirdStarted = false;
    const third = pool.run(task).then(() => (thirdStarted = true));
    await Promise.resolve();
    expect(thirdStarted).toBe(false);
    releases.shift()!();
    await third;
    expect(thirdStarted).toBe(true);
    void pool.run(task); // queued behind the two running
    for (let i = 0; i < 10 && releases.length > 0; i++) {
      releases.shift()!();
      await new Promise((r) => setTimeout(r, 0));
    }
    await pool.idle();
    expect(peak).toBe(2);
    expect(pool.running).toBe(0);
  });
});
