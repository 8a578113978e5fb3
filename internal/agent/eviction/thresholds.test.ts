import { describe, expect, it } from "vitest";
import { crossedThresholds, evictionMessage, parseEvictionHard, thresholdAmount } from "./thresholds.ts";

const Mi = 1024n * 1024n;
const Gi = 1024n * Mi;

describe("parseEvictionHard", () => {
  it("has kubelet's defaults", () => {
    expect(parseEvictionHard("").map((t) => `${t.signal}<${t.text}`)).toEqual([
      "memory.available<100Mi",
      "nodefs.available<10%",
      "imagefs.available<15%",
      "nodefs.inodesFree<5%",
    ]);
  });

  it("replaces the signals it names, keeps the others, and turns a signal off with <0", () => {
    const t = parseEvictionHard("memory.available<1Gi, nodefs.available<0%,imagefs.inodesFree<1000");
    expect(t.map((x) => `${x.signal}<${x.text}`)).toEqual(["memory.available<1Gi", "imagefs.available<15%", "nodefs.inodesFree<5%", "imagefs.inodesFree<1000"]);
    expect(t[0].quantity).toBe(Gi);
    expect(t[3].quantity).toBe(1000n);
  });

  it("refuses what it cannot read, naming the flag, the entry and what is allowed", () => {
    expect(() => parseEvictionHard("memory.free<1Gi")).toThrow(/--eviction-hard: "memory.free<1Gi" is not SIGNAL<QUANTITY .* one of memory.available, nodefs.available/);
    expect(() => parseEvictionHard("memory.available>1Gi")).toThrow(/is not SIGNAL<QUANTITY/);
    expect(() => parseEvictionHard("nodefs.available<120%")).toThrow(/a percentage must be from 0% to 100%/);
    expect(() => parseEvictionHard("memory.available<lots")).toThrow(/want a quantity such as 100Mi/);
  });
});

describe("crossedThresholds", () => {
  const thresholds = parseEvictionHard("");

  it("crosses when what is available is below the limit, absolute or as a share of the capacity", () => {
    const crossed = crossedThresholds(thresholds, {
      "memory.available": { available: 99n * Mi, capacity: 8n * Gi },
      "nodefs.available": { available: 10n * Gi, capacity: 100n * Gi }, // exactly 10%: not below
      "imagefs.available": { available: 14n * Gi, capacity: 100n * Gi },
      "nodefs.inodesFree": { available: 1_000_000n, capacity: 6_000_000n },
    });
    expect(crossed.map((c) => c.threshold.signal)).toEqual(["memory.available", "imagefs.available"]);
    expect(crossed[1].limit).toBe(15n * Gi);
  });

  it("never crosses for a signal the node could not observe", () => {
    expect(crossedThresholds(thresholds, {})).toEqual([]);
  });

  it("computes fractional percentages of the capacity", () => {
    expect(thresholdAmount({ signal: "nodefs.available", percentage: 2.5, text: "2.5%" }, 1000n)).toBe(25n);
  });

  it("words the eviction message like the kubelet", () => {
    const [c] = crossedThresholds(thresholds, { "memory.available": { available: 50n * Mi, capacity: 8n * Gi } });
    expect(evictionMessage(c)).toBe("The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki.");
  });
});
