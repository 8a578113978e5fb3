import { describe, expect, it } from "vitest";
import {
  QuantityError,
  addQuantities,
  compareQuantity,
  formatQuantity,
  parseQuantity,
  quantityFromMilli,
  quantityFromValue,
  quantityToBytes,
  quantityToMilli,
  quantityValue,
  subtractQuantities,
  validateResourceList,
} from "./quantity.ts";

const Ki = 1024n;
const Mi = Ki * Ki;
const Gi = Mi * Ki;

describe("parseQuantity", () => {
  it.each<[string, bigint, string]>([
    ["0", 0n, "DecimalSI"],
    ["-0", 0n, "DecimalSI"],
    ["+0.0", 0n, "DecimalSI"],
    ["0Mi", 0n, "BinarySI"],
    ["1", 1000n, "DecimalSI"],
    ["-1", -1000n, "DecimalSI"],
    ["+1", 1000n, "DecimalSI"],
    ["100m", 100n, "DecimalSI"],
    ["1m", 1n, "DecimalSI"],
    ["1500m", 1500n, "DecimalSI"],
    ["0.5", 500n, "DecimalSI"],
    [".5", 500n, "DecimalSI"],
    ["1.", 1000n, "DecimalSI"],
    ["-.25", -250n, "DecimalSI"],
    ["2.5", 2500n, "DecimalSI"],
    ["007", 7000n, "DecimalSI"],
    ["1k", 1_000_000n, "DecimalSI"],
    ["1M", 10n ** 9n, "DecimalSI"],
    ["1G", 10n ** 12n, "DecimalSI"],
    ["1T", 10n ** 15n, "DecimalSI"],
    ["1P", 10n ** 18n, "DecimalSI"],
    ["1E", 10n ** 21n, "DecimalSI"],
    ["500u", 1n, "DecimalSI"], // finer than 1m rounds up
    ["1000000n", 1n, "DecimalSI"],
    ["2000000n", 2n, "DecimalSI"],
    ["1Ki", Ki * 1000n, "BinarySI"],
    ["1Mi", Mi * 1000n, "BinarySI"],
    ["1Gi", Gi * 1000n, "BinarySI"],
    ["1.5Gi", 1_610_612_736_000n, "BinarySI"],
    ["0.5Ki", 512_000n, "BinarySI"],
    ["1Ti", Gi * Ki * 1000n, "BinarySI"],
    ["1Pi", Gi * Mi * 1000n, "BinarySI"],
    ["7Ei", 7n * Gi * Gi * 1000n, "BinarySI"],
    ["1e3", 1_000_000n, "DecimalExponent"],
    ["1E3", 1_000_000n, "DecimalExponent"],
    ["1e+3", 1_000_000n, "DecimalExponent"],
    ["1E-3", 1n, "DecimalExponent"],
    ["1.5e2", 150_000n, "DecimalExponent"],
    ["12e0", 12_000n, "DecimalExponent"],
    ["-5e-1", -500n, "DecimalExponent"],
    ["1e-9", 1n, "DecimalExponent"],
    ["1e-999999999", 1n, "DecimalExponent"],
    ["0e999999999", 0n, "DecimalExponent"],
    ["0.0001", 1n, "DecimalSI"],
    ["0.0011", 2n, "DecimalSI"],
    ["-0.0001", -1n, "DecimalSI"], // rounded away from zero
    ["9223372036854775807", 9_223_372_036_854_775_807_000n, "DecimalSI"],
  ])("%j → %s milli (%s)", (s, milli, format) => {
    const q = parseQuantity(s);
    expect(q.milliValue).toBe(milli);
    expect(q.format).toBe(format);
  });

  it.each<[string, string]>([
    ["", "must not be empty"],
    ["abc", "must start with a number"],
    ["Mi", "must start with a number"],
    ["-", "must start with a number"],
    [".", "must start with a number"],
    ["+-1", "must start with a number"],
    ["1.2.3", "malformed number"],
    ["1..2", "malformed number"],
    ["10 Mi", "whitespace"],
    [" 1", "whitespace"],
    ["1\n", "whitespace"],
    ["1Mb", 'unknown suffix "Mb"'],
    ["1mi", 'unknown suffix "mi"'],
    ["1KI", 'unknown suffix "KI"'],
    ["1K", 'unknown suffix "K"'],
    ["1e", 'unknown suffix "e"'],
    ["1e1.5", 'unknown suffix "e1.5"'],
    ["1e3m", 'unknown suffix "e3m"'],
    ["1Gi1", 'unknown suffix "Gi1"'],
    ["1-", "sign may only appear at the start"],
    ["1Ki-", 'unknown suffix "Ki-"'],
    ["8Ei", "too large"],
    ["9223372036854775808", "too large"],
    ["1e19", "too large"],
    ["1e999999999", "too large"],
    ["-1e999999999", "too large"],
    ["10E", "too large"],
  ])("rejects %j (%s)", (s, part) => {
    expect(() => parseQuantity(s)).toThrow(QuantityError);
    expect(() => parseQuantity(s)).toThrow(part);
  });

  it("quotes the input in its messages", () => {
    expect(() => parseQuantity("1Mb")).toThrow(/^invalid quantity "1Mb": unknown suffix "Mb" \(use one of/);
  });

  it("rejects non-strings reaching it at runtime", () => {
    expect(() => parseQuantity(5 as unknown as string)).toThrow(QuantityError);
  });

  it("handles many fraction digits exactly", () => {
    expect(parseQuantity(`0.${"0".repeat(2)}1${"0".repeat(5000)}`).milliValue).toBe(1n);
    expect(parseQuantity(`1.${"0".repeat(5000)}`).milliValue).toBe(1000n);
  });
});

describe("quantityToMilli / quantityValue / quantityToBytes", () => {
  it.each<[string, bigint, bigint]>([
    ["0", 0n, 0n],
    ["100m", 100n, 1n],
    ["999m", 999n, 1n],
    ["1000m", 1000n, 1n],
    ["1001m", 1001n, 2n],
    ["1.5", 1500n, 2n],
    ["-1", -1000n, -1n],
    ["-1.5", -1500n, -2n],
    ["-100m", -100n, -1n],
    ["2", 2000n, 2n],
    ["1.5Gi", 1_610_612_736_000n, 1_610_612_736n],
    ["128Mi", 128n * Mi * 1000n, 128n * Mi],
    ["1e3", 1_000_000n, 1000n],
    ["0.5Ki", 512_000n, 512n],
  ])("%j → %s milli, value %s", (s, milli, value) => {
    expect(quantityToMilli(s)).toBe(milli);
    expect(quantityToMilli(parseQuantity(s))).toBe(milli);
    expect(quantityValue(s)).toBe(value);
    expect(quantityToBytes(s)).toBe(value);
  });

  it("throws for a bad string", () => {
    expect(() => quantityToBytes("1Mb")).toThrow(QuantityError);
  });
});

describe("quantityFromMilli / quantityFromValue", () => {
  it("builds quantities", () => {
    expect(quantityFromMilli(250n)).toEqual({ milliValue: 250n, format: "DecimalSI" });
    expect(quantityFromValue(2n ** 30n, "BinarySI")).toEqual({ milliValue: Gi * 1000n, format: "BinarySI" });
    expect(quantityFromValue(3)).toEqual({ milliValue: 3000n, format: "DecimalSI" });
    expect(formatQuantity(quantityFromValue(2n ** 30n, "BinarySI"))).toBe("1Gi");
  });
  it.each([1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1])("rejects number %s", (n) => {
    expect(() => quantityFromValue(n)).toThrow(QuantityError);
  });
});

describe("formatQuantity", () => {
  it.each<[string, string]>([
    ["0", "0"],
    ["-0", "0"],
    ["0Gi", "0"],
    ["1", "1"],
    ["-1", "-1"],
    ["100m", "100m"],
    ["0.1", "100m"],
    ["1500m", "1500m"],
    ["1.5", "1500m"],
    ["1000m", "1"],
    ["-1500m", "-1500m"],
    ["1000", "1k"],
    ["1500", "1500"],
    ["1500000", "1500k"],
    ["2000000", "2M"],
    ["1E", "1E"],
    ["1e3", "1e3"],
    ["1.5e3", "1500"],
    ["12e6", "12e6"],
    ["1E-3", "1e-3"],
    ["100e-3", "100e-3"],
    ["1Ki", "1Ki"],
    ["1024Ki", "1Mi"],
    ["1.5Gi", "1536Mi"],
    ["0.5Gi", "512Mi"],
    ["0.5Ki", "512"], // binary below 1Ki prints in decimal
    ["1.5Ki", "1536"],
    ["1023Ki", "1023Ki"],
    ["-2Gi", "-2Gi"],
    ["7Ei", "7Ei"],
    ["0.0001", "1m"],
  ])("%j → %j", (s, out) => {
    expect(formatQuantity(s)).toBe(out);
    expect(formatQuantity(parseQuantity(s))).toBe(out);
  });

  it("formats binary quantities not divisible by 1Ki in plain units", () => {
    expect(formatQuantity(quantityFromValue(1500, "BinarySI"))).toBe("1500");
    expect(formatQuantity(quantityFromMilli(1_024_500n, "BinarySI"))).toBe("1024500m");
  });

  it.each(["0", "1", "100m", "1.5Gi", "1e3", "-7Ki", "123456789", "1E-3", "5E"])("round-trips %j", (s) => {
    const q = parseQuantity(s);
    expect(parseQuantity(formatQuantity(q))).toEqual(q);
  });
});

describe("compareQuantity", () => {
  it.each<[string, string, -1 | 0 | 1]>([
    ["1", "1000m", 0],
    ["1Ki", "1024", 0],
    ["1k", "1Ki", -1],
    ["1Gi", "1G", 1],
    ["100m", "0.1", 0],
    ["-1", "0", -1],
    ["0", "-0", 0],
    ["1e3", "1k", 0],
    ["999m", "1", -1],
    ["2", "1.999", 1],
  ])("compare(%j, %j) = %i", (a, b, want) => {
    expect(compareQuantity(a, b)).toBe(want);
    expect(compareQuantity(parseQuantity(b), parseQuantity(a))).toBe(want === 0 ? 0 : -want);
  });
});

describe("addQuantities / subtractQuantities", () => {
  it("adds exactly across formats", () => {
    expect(addQuantities("100m", "200m", "0.7").milliValue).toBe(1000n);
    expect(formatQuantity(addQuantities("1Gi", "512Mi"))).toBe("1536Mi");
    expect(addQuantities("1Ki", "1k").milliValue).toBe(2_024_000n);
  });
  it("keeps the format of the first non-zero operand", () => {
    expect(addQuantities("1Gi", "1").format).toBe("BinarySI");
    expect(addQuantities("0", "1Gi").format).toBe("BinarySI");
    expect(addQuantities("1e3", "1Gi").format).toBe("DecimalExponent");
    expect(addQuantities("0Mi", "0").format).toBe("BinarySI");
  });
  it("returns zero for no operands", () => {
    expect(addQuantities()).toEqual({ milliValue: 0n, format: "DecimalSI" });
  });
  it("goes negative when needed", () => {
    expect(formatQuantity(addQuantities("1", "-1500m"))).toBe("-500m");
  });
  it("subtracts in the first operand's format", () => {
    expect(subtractQuantities("4Gi", "1.5Gi")).toEqual({ milliValue: 2_684_354_560_000n, format: "BinarySI" });
    expect(formatQuantity(subtractQuantities("4Gi", "1.5Gi"))).toBe("2560Mi");
    expect(formatQuantity(subtractQuantities("2", "2500m"))).toBe("-500m");
  });
  it("sums beyond the parse limit without overflow", () => {
    expect(quantityValue(addQuantities("7Ei", "7Ei"))).toBe(14n * Gi * Gi);
  });
});

describe("validateResourceList", () => {
  const path = "spec.containers[0].resources.limits";

  it.each<[Record<string, string>]>([
    [{}],
    [{ cpu: "500m", memory: "128Mi" }],
    [{ cpu: "0", memory: "0", pods: "110", "ephemeral-storage": "10Gi" }],
    [{ "example.com/gpu": "2" }],
    [{ "nvidia.com/gpu": "1", cpu: "2" }],
    [{ "example.com/foo_bar.Baz": "1e3" }],
  ])("accepts %j", (list) => {
    expect(validateResourceList(list, path)).toEqual([]);
  });

  it.each<[Record<string, string>, string, string]>([
    [{ cpu: "abc" }, `${path}[cpu]`, 'invalid quantity "abc"'],
    [{ memory: "10 Mi" }, `${path}[memory]`, "whitespace"],
    [{ memory: "1Mb" }, `${path}[memory]`, 'unknown suffix "Mb"'],
    [{ cpu: "" }, `${path}[cpu]`, "must not be empty"],
    [{ cpu: "-1" }, `${path}[cpu]`, 'must be greater than or equal to 0, got "-1"'],
    [{ memory: "-1Gi" }, `${path}[memory]`, "greater than or equal to 0"],
    [{ gpu: "1" }, `${path}[gpu]`, 'unsupported resource name "gpu": must be one of cpu, memory, pods, ephemeral-storage'],
    [{ storage: "1Gi" }, `${path}[storage]`, "unsupported resource name"],
    [{ CPU: "1" }, `${path}[CPU]`, "unsupported resource name"],
    [{ "example.com/": "1" }, `${path}[example.com/]`, "name part must not be empty"],
    [{ "Example.com/gpu": "1" }, `${path}[Example.com/gpu]`, "invalid resource name"],
    [{ "a/b/c": "1" }, `${path}[a/b/c]`, "invalid resource name"],
    [{ "kubernetes.io/gpu": "1" }, `${path}[kubernetes.io/gpu]`, "reserved kubernetes.io prefix"],
    [{ "node.kubernetes.io/x": "1" }, `${path}[node.kubernetes.io/x]`, "reserved"],
    [{ "example.com/gpu": "500m" }, `${path}[example.com/gpu]`, 'must be a whole number for "example.com/gpu"'],
    [{ pods: "1.5" }, `${path}[pods]`, "whole number"],
  ])("rejects %j", (list, field, part) => {
    const v = validateResourceList(list, path);
    expect(v).toHaveLength(1);
    expect(v[0].field).toBe(field);
    expect(v[0].message).toContain(part);
  });

  it("reports every violation, sorted by resource name", () => {
    const v = validateResourceList({ memory: "x", cpu: "-1", "example.com/a": "1", zzz: "1" }, "limits");
    expect(v.map((x) => x.field)).toEqual(["limits[cpu]", "limits[memory]", "limits[zzz]"]);
  });

  it("takes other standard names, e.g. for volume claims", () => {
    expect(validateResourceList({ storage: "10Gi" }, "spec.resources.requests", { standardNames: ["storage"] })).toEqual([]);
    const v = validateResourceList({ cpu: "1" }, "spec.resources.requests", { standardNames: ["storage"] });
    expect(v[0].message).toContain("must be one of storage");
  });
});
