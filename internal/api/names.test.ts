import { describe, expect, it } from "vitest";
import {
  ANNOTATIONS_MAX_TOTAL_BYTES,
  MAX_GENERATE_NAME_PREFIX_LENGTH,
  NAME_SUFFIX_ALPHABET,
  annotationsSize,
  generateName,
  generateNameSuffix,
  validateAnnotations,
  validateAnnotationsSize,
  validateCIdentifier,
  validateDNS1035Label,
  validateDNS1123Label,
  validateDNS1123Subdomain,
  validateEnvVarName,
  validateLabelKey,
  validateLabelValue,
  validateLabels,
  validatePortName,
  validateQualifiedName,
} from "./names.ts";

const ok = (fn: (s: string) => string[], s: string) => expect(fn(s), JSON.stringify(s)).toEqual([]);
const bad = (fn: (s: string) => string[], s: string, part?: string) => {
  const errs = fn(s);
  expect(errs.length, JSON.stringify(s)).toBeGreaterThan(0);
  if (part !== undefined) expect(errs.join("\n")).toContain(part);
};

describe("validateDNS1123Label", () => {
  it.each(["a", "0", "abc", "a-b", "a--b", "123", "1-2-3", "a".repeat(63), "web-7d4b9"])("accepts %j", (s) =>
    ok(validateDNS1123Label, s),
  );
  it.each([
    ["", "must not be empty"],
    ["A", "lower case"],
    ["-a", "start and end"],
    ["a-", "start and end"],
    ["a.b", "lower case"],
    ["a_b", "lower case"],
    ["a b", "lower case"],
    ["ä", "lower case"],
    ["a".repeat(64), "no more than 63"],
  ])("rejects %j", (s, part) => bad(validateDNS1123Label, s, part));
});

describe("validateDNS1123Subdomain", () => {
  it.each([
    "a",
    "example.com",
    "a.b.c",
    "my-app.v1",
    "1.2.3",
    "a".repeat(253),
    `${"a".repeat(63)}.${"b".repeat(63)}`,
  ])("accepts %j", (s) => ok(validateDNS1123Subdomain, s));
  it.each([
    ["", "must not be empty"],
    ["Example.com", "lower case"],
    [".a", "start and end"],
    ["a.", "start and end"],
    ["a..b", "lower case"],
    ["a.-b", "lower case"],
    ["a_b", "lower case"],
    ["a/b", "lower case"],
    ["a".repeat(254), "no more than 253"],
  ])("rejects %j", (s, part) => bad(validateDNS1123Subdomain, s, part));
});

describe("validateDNS1035Label", () => {
  it.each(["a", "abc-123", "a".repeat(63)])("accepts %j", (s) => ok(validateDNS1035Label, s));
  it.each([
    ["", "must not be empty"],
    ["1abc", "start with a letter"],
    ["abc-", "start with a letter"],
    ["a.b", "lower case"],
    ["a".repeat(64), "no more than 63"],
  ])("rejects %j", (s, part) => bad(validateDNS1035Label, s, part));
});

describe("validateQualifiedName / validateLabelKey", () => {
  it.each([
    "app",
    "App",
    "a",
    "my_key.v1-x",
    "app.kubernetes.io/name",
    "example.com/MyName",
    "k8s.io/a",
    "a/b",
    "x".repeat(63),
    `${"p".repeat(253)}/${"n".repeat(63)}`,
  ])("accepts %j", (s) => {
    ok(validateQualifiedName, s);
    ok(validateLabelKey, s);
  });
  it.each([
    ["", "name part must not be empty"],
    ["/a", "prefix part must not be empty"],
    ["a/", "name part must not be empty"],
    ["a/b/c", "single '/'"],
    ["-a", "name part must consist"],
    ["a-", "name part must consist"],
    ["_a", "name part must consist"],
    ["a b", "name part must consist"],
    ["a=b", "name part must consist"],
    ["Example.com/a", "prefix part must consist"],
    ["exa_mple.com/a", "prefix part must consist"],
    ["x".repeat(64), "name part must be no more than 63"],
    [`${"p".repeat(254)}/n`, "prefix part must be no more than 253"],
  ])("rejects %j", (s, part) => bad(validateLabelKey, s, part));
});

describe("validateLabelValue", () => {
  it.each(["", "a", "A", "1", "v1.2.3", "my_value", "a-b", "x".repeat(63)])("accepts %j", (s) =>
    ok(validateLabelValue, s),
  );
  it.each([
    ["-a", "start and"],
    ["a.", "start and"],
    ["a b", "must be empty or consist"],
    ["a/b", "must be empty or consist"],
    ["x".repeat(64), "no more than 63"],
  ])("rejects %j", (s, part) => bad(validateLabelValue, s, part));
});

describe("validateLabels", () => {
  it("accepts a valid map and an empty one", () => {
    expect(validateLabels({ app: "web", "app.kubernetes.io/tier": "", v: "1.0" })).toEqual([]);
    expect(validateLabels({})).toEqual([]);
  });
  it("names each offending key and value", () => {
    const errs = validateLabels({ "bad key": "ok", good: "bad value" });
    expect(errs).toHaveLength(2);
    expect(errs[0]).toContain('label key "bad key"');
    expect(errs[1]).toContain('label value "bad value" for key "good"');
  });
});

describe("annotations", () => {
  it("counts UTF-8 bytes of keys and values", () => {
    expect(annotationsSize({})).toBe(0);
    expect(annotationsSize({ ab: "cde" })).toBe(5);
    expect(annotationsSize({ k: "é" })).toBe(3);
  });
  it("allows exactly 256 KiB and rejects one byte more", () => {
    const limit = { k: "x".repeat(ANNOTATIONS_MAX_TOTAL_BYTES - 1) };
    expect(validateAnnotationsSize(limit)).toEqual([]);
    const over = { k: "x".repeat(ANNOTATIONS_MAX_TOTAL_BYTES) };
    expect(validateAnnotationsSize(over)).toEqual([
      `annotations are ${ANNOTATIONS_MAX_TOTAL_BYTES + 1} bytes in total; they must be at most 262144 bytes`,
    ]);
  });
  it("counts the size across keys", () => {
    const half = "x".repeat(ANNOTATIONS_MAX_TOTAL_BYTES / 2);
    expect(validateAnnotationsSize({ a: half, b: half })).toHaveLength(1);
  });
  it.each([
    [{ "example.com/Note": "any text at all: / = ,", "kubectl.kubernetes.io/last-applied-configuration": "{}" }, 0],
    [{ "Example.COM/key": "" }, 0], // keys are checked case-insensitively
    [{ "bad key": "v" }, 1],
    [{ "a/b/c": "v", "": "v" }, 2],
  ])("validateAnnotations(%j) has %i problems", (a, n) => {
    expect(validateAnnotations(a)).toHaveLength(n);
  });
  it("validateAnnotations names the key and includes the size check", () => {
    expect(validateAnnotations({ "bad key": "v" })[0]).toContain('annotation key "bad key"');
    expect(validateAnnotations({ k: "x".repeat(ANNOTATIONS_MAX_TOTAL_BYTES) })[0]).toContain("at most 262144 bytes");
  });
});

describe("validateCIdentifier", () => {
  it.each(["A", "_", "MY_VAR", "a1", "_1"])("accepts %j", (s) => ok(validateCIdentifier, s));
  it.each(["", "1A", "MY-VAR", "MY.VAR", "a b", "é"])("rejects %j", (s) => bad(validateCIdentifier, s, "C identifier"));
});

describe("validateEnvVarName", () => {
  it.each(["HOME", "MY_ENV.NAME", "my-env-name", "_x", "-x", ".x", "a..b", "A1"])("accepts %j", (s) =>
    ok(validateEnvVarName, s),
  );
  it.each([
    ["", "must consist"],
    ["1A", "must not start with a digit"],
    ["A B", "must consist"],
    ["A=B", "must consist"],
    [".", "must not be '.'"],
    ["..", "must not be '..'"],
    ["..x", "must not start with '..'"],
  ])("rejects %j", (s, part) => bad(validateEnvVarName, s, part));
});

describe("validatePortName", () => {
  it.each(["http", "h", "http-alt", "metrics-9090", "a1", "1a", "x".repeat(15)])("accepts %j", (s) =>
    ok(validatePortName, s),
  );
  it.each([
    ["", "must not be empty"],
    ["x".repeat(16), "no more than 15"],
    ["8080", "at least one letter"],
    ["HTTP", "lower case"],
    ["http_alt", "lower case"],
    ["http--alt", "consecutive hyphens"],
    ["-http", "begin or end"],
    ["http-", "begin or end"],
    ["-", "at least one letter"],
  ])("rejects %j", (s, part) => bad(validatePortName, s, part));
});

describe("generateNameSuffix / generateName", () => {
  it("gives 5 characters from the alphabet", () => {
    for (let i = 0; i < 200; i++) expect(generateNameSuffix()).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });
  it("has no vowels or confusable digits in its alphabet", () => {
    expect(NAME_SUFFIX_ALPHABET).not.toMatch(/[aeiou013]/);
    expect(new Set(NAME_SUFFIX_ALPHABET).size).toBe(NAME_SUFFIX_ALPHABET.length);
  });
  it("uses the injected random source", () => {
    expect(generateNameSuffix(() => 0)).toBe("bbbbb");
    expect(generateNameSuffix((n) => n - 1)).toBe("99999");
  });
  it("varies between calls", () => {
    const seen = new Set(Array.from({ length: 50 }, () => generateNameSuffix()));
    expect(seen.size).toBeGreaterThan(40);
  });
  it("appends the suffix to the prefix and keeps the result a valid name", () => {
    const n = generateName("web-", () => 1);
    expect(n).toBe("web-ccccc");
    expect(validateDNS1123Subdomain(generateName("web-"))).toEqual([]);
  });
  it("truncates a long prefix to 58 characters", () => {
    const n = generateName("p".repeat(100), () => 0);
    expect(n).toBe("p".repeat(MAX_GENERATE_NAME_PREFIX_LENGTH) + "bbbbb");
    expect(n).toHaveLength(63);
  });
});
