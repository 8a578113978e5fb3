import { describe, expect, it } from "vitest";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { age, formatLabels, formatTable, shortDuration } from "./table.ts";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe("shortDuration", () => {
  it.each([
    [0, "0s"],
    [-5 * S, "0s"],
    [5 * S, "5s"],
    [119 * S, "119s"],
    [3 * M, "3m"],
    [3 * M + 20 * S, "3m20s"],
    [42 * M, "42m"],
    [2 * H + 59 * M, "179m"],
    [5 * H + 12 * M, "5h12m"],
    [20 * H, "20h"],
    [2 * D, "2d"],
    [3 * D + 4 * H, "3d4h"],
    [40 * D, "40d"],
    [800 * D, "2y70d"],
    [9 * 365 * D, "9y"],
  ])("%d ms -> %s", (ms, want) => {
    expect(shortDuration(ms)).toBe(want);
  });

  it("ages timestamps", () => {
    const now = Date.now();
    expect(age(timestampFromMs(now - 5 * S), now)).toBe("5s");
    expect(age(undefined, now)).toBe("<unknown>");
  });
});

describe("formatTable", () => {
  it("aligns columns three spaces apart without padding the last one", () => {
    expect(formatTable(["NAME", "READY", "AGE"], [["web-1", "1/1", "5s"], ["a", "0/1", "10m"]])).toBe(
      ["NAME    READY   AGE", "web-1   1/1     5s", "a       0/1     10m"].join("\n"),
    );
  });

  it("formats labels sorted", () => {
    expect(formatLabels({ b: "2", a: "1" })).toBe("a=1,b=2");
    expect(formatLabels({})).toBe("<none>");
  });
});
