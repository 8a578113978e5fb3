import { describe, expect, it } from "vitest";
import { formatLogRecord, parseLogRecord, parseRfc3339 } from "./log-format.ts";

const ns = (iso: string) => BigInt(Date.parse(iso)) * 1_000_000n;

describe("parseRfc3339", () => {
  it("reads UTC and zone offsets, up to nanoseconds", () => {
    expect(parseRfc3339("2024-05-01T10:00:00Z")).toBe(ns("2024-05-01T10:00:00Z"));
    expect(parseRfc3339("2024-05-01t10:00:00.5z")).toBe(ns("2024-05-01T10:00:00Z") + 500_000_000n);
    expect(parseRfc3339("2024-05-01T10:00:00.123456789Z")).toBe(ns("2024-05-01T10:00:00Z") + 123_456_789n);
    expect(parseRfc3339("2024-05-01T12:30:00+02:30")).toBe(ns("2024-05-01T10:00:00Z"));
    expect(parseRfc3339("2024-05-01T00:00:00-01:00")).toBe(ns("2024-05-01T01:00:00Z"));
  });

  it("refuses what is not a time", () => {
    for (const bad of ["", "5m", "2024-05-01", "2024-05-01T10:00:00", "2024-05-01 10:00:00Z", "2024-02-30T10:00:00Z", "2024-05-01T24:00:00Z",
      "2024-05-01T10:60:00Z", "2024-05-01T10:00:00.Z", "2024-05-01T10:00:00.1234567890Z", "2024-05-01T10:00:00+25:00", "2024-13-01T10:00:00Z"]) {
      expect(parseRfc3339(bad), bad).toBeUndefined();
    }
  });
});

describe("log records", () => {
  it("round-trip through a file line", () => {
    const line = formatLogRecord("2024-05-01T10:00:00.25Z", "stderr", false, "a b  c");
    expect(line.toString()).toBe("2024-05-01T10:00:00.25Z stderr P a b  c\n");
    const r = parseLogRecord(line.subarray(0, line.length - 1))!;
    expect({ ...r, content: Buffer.from(r.content).toString() }).toEqual({
      time: "2024-05-01T10:00:00.25Z",
      timeNs: ns("2024-05-01T10:00:00Z") + 250_000_000n,
      stream: "stderr",
      full: false,
      content: "a b  c",
    });
    expect(Buffer.from(parseLogRecord(Buffer.from("2024-05-01T10:00:00Z stdout F "))!.content).toString()).toBe("");
  });

  it("each carry their own time (records of one read share it)", () => {
    const times = ["2024-05-01T10:00:00.1Z", "2024-05-01T10:00:00.1Z", "2024-05-01T10:00:00.2Z", "2024-05-01T10:00:00.1Z", "not-a-time"];
    const parsed = times.map((t) => parseLogRecord(Buffer.from(`${t} stdout F x`))?.timeNs);
    const base = ns("2024-05-01T10:00:00Z");
    expect(parsed).toEqual([base + 100_000_000n, base + 100_000_000n, base + 200_000_000n, base + 100_000_000n, undefined]);
  });

  it("are not lines in another format", () => {
    for (const bad of ["hello world", "2024-05-01T10:00:00Z stdin F x", "2024-05-01T10:00:00Z stdout X x", "2024-05-01T10:00:00Z stdout Fx",
      "yesterday stdout F x", "2024-05-01T10:00:00Z stdout"]) {
      expect(parseLogRecord(Buffer.from(bad)), bad).toBeUndefined();
    }
  });
});
