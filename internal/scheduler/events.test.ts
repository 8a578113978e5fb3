import { describe, expect, it } from "vitest";
import type { EventRecorder } from "../client/events.ts";
import { makePod } from "./core/testing.ts";
import { createPacedRecorder } from "./events.ts";

/** An inner recorder whose writes finish when the test says so. */
function fakeInner() {
  const written: string[] = [];
  let inFlight: string[] = [];
  let release: (() => void) | undefined;
  const inner: EventRecorder = {
    event: (_obj, _type, _reason, message) => void inFlight.push(message),
    flush: () =>
      new Promise<void>((resolve) => {
        release = () => {
          written.push(...inFlight);
          inFlight = [];
          resolve();
        };
      }),
  };
  return { inner, written, inFlight: () => inFlight, release: () => release?.() };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("paced events", () => {
  it("hands events over a few at a time", async () => {
    const f = fakeInner();
    const rec = createPacedRecorder(f.inner, { concurrency: 2 });
    for (let i = 0; i < 5; i++) rec.event(makePod("p"), "Normal", "Scheduled", `m${i}`);
    expect(f.inFlight()).toEqual(["m0"]);
    f.release();
    await tick();
    expect(f.inFlight()).toEqual(["m1", "m2"]);
    f.release();
    await tick();
    f.release();
    await tick();
    f.release();
    expect(f.written).toEqual(["m0", "m1", "m2", "m3", "m4"]);
  });

  it("drops the oldest beyond the backlog, and discards on demand", async () => {
    const f = fakeInner();
    const rec = createPacedRecorder(f.inner, { concurrency: 1, maxPending: 2 });
    for (let i = 0; i < 5; i++) rec.event(makePod("p"), "Normal", "Scheduled", `m${i}`);
    expect(f.inFlight()).toEqual(["m0"]);
    f.release();
    await tick();
    expect(f.inFlight()).toEqual(["m3"]);
    expect(rec.discard()).toBe(1);
  });
});
