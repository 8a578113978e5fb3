// `skiff scheduler --percentage-of-nodes-to-score`: 0 (kube-scheduler's adaptive value) to 100
// (every node); anything else stops the scheduler at start with what it accepts.
import { describe, expect, it } from "vitest";
import { percentageOfNodesToScoreFlag } from "./scheduler.ts";

describe("skiff scheduler --percentage-of-nodes-to-score", () => {
  it("takes whole percentages from 0 to 100", () => {
    expect(percentageOfNodesToScoreFlag("0")).toBe(0);
    expect(percentageOfNodesToScoreFlag("1")).toBe(1);
    expect(percentageOfNodesToScoreFlag("10")).toBe(10);
    expect(percentageOfNodesToScoreFlag("100")).toBe(100);
  });

  it("refuses values out of bounds, fractions, words and an empty value", () => {
    for (const bad of ["-1", "101", "1000", "12.5", "ten", "10%", "", " "]) {
      expect(() => percentageOfNodesToScoreFlag(bad)).toThrow(
        `--percentage-of-nodes-to-score must be an integer from 0 to 100 (0 = adaptive, 100 = every node), got "${bad}"`,
      );
    }
  });
});
