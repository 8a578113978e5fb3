// Kubernetes resource quantities ("100m", "1.5Gi", "1e3"), held exactly as a bigint of
// milli-units. Like Kubernetes, precision finer than 1m is rounded up (0.1m → 1m) and a
// quantity may not exceed 2^63-1 in magnitude. Hand-written: no maintained npm package parses
// this grammar, and it is small.
//
//   quantity ::= [+|-] number suffix
//   number   ::= digits | digits "." [digits] | "." digits
//   suffix   ::= "" | n | u | m | k | M | G | T | P | E | Ki | Mi | Gi | Ti | Pi | Ei | (e|E) [+|-] digits

import type { FieldViolation } from "./names.ts";
import { validateQualifiedName } from "./names.ts";

/** How a quantity prefers to be printed, taken from the suffix it was written with. */
export type QuantityFormat = "DecimalSI" | "BinarySI" | "DecimalExponent";

export interface Quantity {
  /** The exact value in thousandths of a unit (1 CPU = 1000n, 1Ki bytes = 1024000n). */
  readonly milliValue: bigint;
  readonly format: QuantityFormat;
}

export class QuantityError extends Error {
  override name = "QuantityError";
}

/** A quantity object or its string form; helpers accept either. */
export type QuantityLike = Quantity | string;

const MAX_VALUE = (1n << 63n) - 1n;
const MAX_MILLI = MAX_VALUE * 1000n;

const DECIMAL_SUFFIXES: Record<string, number> = {
  n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18,
};
const BINARY_SUFFIXES: Record<string, bigint> = {
  Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n,
};
const EXPONENT = /^[eE]([+-]?)(\d+)$/;
const SUFFIX_HINT = "use one of m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3";

function fail(s: string, why: string): never {
  throw new QuantityError(`invalid quantity "${s}": ${why}`);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/** Parse a quantity string. Throws QuantityError naming the problem. */
export function parseQuantity(s: string): Quantity {
  if (typeof s !== "string") throw new QuantityError(`quantity must be a string, got ${typeof s}`);
  if (s === "") throw new QuantityError("quantity must not be empty");
  if (/\s/.test(s)) fail(s, "must not contain whitespace");

  let i = 0;
  let negative = false;
  if (s[i] === "+" || s[i] === "-") negative = s[i++] === "-";
  const intStart = i;
  while (isDigit(s[i])) i++;
  const intDigits = s.slice(intStart, i);
  let fracDigits = "";
  if (s[i] === ".") {
    const fracStart = ++i;
    while (isDigit(s[i])) i++;
    fracDigits = s.slice(fracStart, i);
  }
  if (intDigits === "" && fracDigits === "") fail(s, 'must start with a number (e.g. "100m", "1.5Gi", "1e3")');
  const suffix = s.slice(i);
  if (suffix.startsWith(".") || isDigit(suffix[0])) fail(s, "malformed number (more than one decimal point?)");
  if (suffix.startsWith("+") || suffix.startsWith("-")) fail(s, "a sign may only appear at the start");

  let exp10: number;
  let binaryShift = 0n;
  let format: QuantityFormat = "DecimalSI";
  if (Object.hasOwn(DECIMAL_SUFFIXES, suffix)) {
    exp10 = DECIMAL_SUFFIXES[suffix];
  } else if (Object.hasOwn(BINARY_SUFFIXES, suffix)) {
    exp10 = 0;
    binaryShift = BINARY_SUFFIXES[suffix];
    format = "BinarySI";
  } else {
    const m = EXPONENT.exec(suffix);
    if (m === null) fail(s, `unknown suffix "${suffix}" (${SUFFIX_HINT})`);
    // Clamp absurd exponents; the bounds below turn them into "too large" or "rounds to 1m".
    exp10 = Math.min(Number(m[2]), 1_000_000) * (m[1] === "-" ? -1 : 1);
    format = "DecimalExponent";
  }

  const digits = (intDigits + fracDigits).replace(/^0+/, "");
  if (digits === "") return { milliValue: 0n, format };

  // value = digits × 10^shift milli-units × 2^binaryShift
  const shift = exp10 - fracDigits.length + 3;
  let milli: bigint;
  if (shift >= 0) {
    // Cheap magnitude check first so "1e999999" never builds a huge bigint.
    if (digits.length - 1 + shift > 22) fail(s, "too large (must be at most 2^63-1)");
    milli = (BigInt(digits) << binaryShift) * 10n ** BigInt(shift);
  } else if (-shift > digits.length + 19) {
    // The binary factor is < 10^19, so the value is below 1m: round up like Kubernetes.
    milli = 1n;
  } else {
    const num = BigInt(digits) << binaryShift;
    const div = 10n ** BigInt(-shift);
    milli = num / div + (num % div === 0n ? 0n : 1n);
  }
  if (milli > MAX_MILLI) fail(s, "too large (must be at most 2^63-1)");
  return { milliValue: negative ? -milli : milli, format };
}

function toQuantity(q: QuantityLike): Quantity {
  return typeof q === "string" ? parseQuantity(q) : q;
}

/** A quantity from milli-units, e.g. `quantityFromMilli(250n)` is "250m". */
export function quantityFromMilli(milliValue: bigint, format: QuantityFormat = "DecimalSI"): Quantity {
  return { milliValue, format };
}

/** A quantity from whole units, e.g. `quantityFromValue(2n ** 30n, "BinarySI")` is "1Gi". */
export function quantityFromValue(value: bigint | number, format: QuantityFormat = "DecimalSI"): Quantity {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new QuantityError(`quantity value must be a safe integer, got ${value}`);
  }
  return { milliValue: BigInt(value) * 1000n, format };
}

/** The exact value in milli-units (Kubernetes' MilliValue()). */
export function quantityToMilli(q: QuantityLike): bigint {
  return toQuantity(q).milliValue;
}

/** Whole units, rounded away from zero like Kubernetes' Value(): "100m" → 1, "-1.5" → -2. */
export function quantityValue(q: QuantityLike): bigint {
  const m = toQuantity(q).milliValue;
  const whole = m / 1000n;
  if (m % 1000n === 0n) return whole;
  return m > 0n ? whole + 1n : whole - 1n;
}

/** Bytes for memory/storage quantities: the same as quantityValue ("1.5Gi" → 1610612736n). */
export function quantityToBytes(q: QuantityLike): bigint {
  return quantityValue(q);
}

const DECIMAL_NAMES = ["", "k", "M", "G", "T", "P", "E"];
const BINARY_NAMES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

// Largest power of `base` (at most 6) dividing n exactly.
function largestPower(n: bigint, base: bigint): number {
  let p = 0;
  while (p < 6 && n % base === 0n) {
    n /= base;
    p++;
  }
  return p;
}

/**
 * Canonical string form, as Kubernetes prints it: an integer mantissa with the largest suffix
 * that keeps it exact ("1500m", "1k", "1536Mi", "1e3"). Binary quantities below 1Ki or with a
 * fraction print in decimal form.
 */
export function formatQuantity(q: QuantityLike): string {
  const { milliValue, format } = toQuantity(q);
  if (milliValue === 0n) return "0";
  const sign = milliValue < 0n ? "-" : "";
  const abs = milliValue < 0n ? -milliValue : milliValue;
  const exponent = format === "DecimalExponent";
  if (abs % 1000n !== 0n) return `${sign}${abs}${exponent ? "e-3" : "m"}`;
  const value = abs / 1000n;
  if (format === "BinarySI" && value >= 1024n) {
    const p = largestPower(value, 1024n);
    return `${sign}${value / 1024n ** BigInt(p)}${BINARY_NAMES[p]}`;
  }
  const p = largestPower(value, 1000n);
  const mantissa = value / 1000n ** BigInt(p);
  if (exponent) return `${sign}${mantissa}${p === 0 ? "" : `e${p * 3}`}`;
  return `${sign}${mantissa}${DECIMAL_NAMES[p]}`;
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareQuantity(a: QuantityLike, b: QuantityLike): -1 | 0 | 1 {
  const x = toQuantity(a).milliValue;
  const y = toQuantity(b).milliValue;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The sum; it keeps the format of the first non-zero operand, as Kubernetes' Add() does. */
export function addQuantities(...qs: QuantityLike[]): Quantity {
  let milliValue = 0n;
  let format: QuantityFormat | undefined;
  for (const q of qs.map(toQuantity)) {
    if (format === undefined && q.milliValue !== 0n) format = q.format;
    milliValue += q.milliValue;
  }
  return { milliValue, format: format ?? (qs.length > 0 ? toQuantity(qs[0]).format : "DecimalSI") };
}

/** a - b, in a's format (useful for "allocatable minus requested"). */
export function subtractQuantities(a: QuantityLike, b: QuantityLike): Quantity {
  const x = toQuantity(a);
  return { milliValue: x.milliValue - toQuantity(b).milliValue, format: x.format };
}

/** Resource names every resource list accepts unless the caller passes its own. */
export const STANDARD_RESOURCE_NAMES: readonly string[] = ["cpu", "memory", "pods", "ephemeral-storage"];

export interface ResourceListOptions {
  /** Unprefixed names allowed here (default STANDARD_RESOURCE_NAMES; a PVC would pass ["storage"]). */
  standardNames?: readonly string[];
}

// "kubernetes.io/..." and "*.kubernetes.io/..." are reserved for Kubernetes' own resources.
function isReservedPrefix(prefix: string): boolean {
  return prefix === "kubernetes.io" || prefix.endsWith(".kubernetes.io");
}

/**
 * Validate a resource list such as `resources.limits`. Every value must parse and be
 * non-negative; a name must be a standard resource or a domain-prefixed extended resource
 * (`example.com/gpu`), whose quantities must be whole numbers. `pods` must be whole too.
 * Violations use paths like `spec.containers[0].resources.limits[cpu]`, sorted by name.
 */
export function validateResourceList(
  map: Record<string, string>,
  path: string,
  options: ResourceListOptions = {},
): FieldViolation[] {
  const standard = options.standardNames ?? STANDARD_RESOURCE_NAMES;
  const out: FieldViolation[] = [];
  for (const name of Object.keys(map).sort()) {
    const field = `${path}[${name}]`;
    let wholeOnly = name === "pods";
    if (!standard.includes(name)) {
      const slash = name.indexOf("/");
      if (slash < 0) {
        out.push({
          field,
          message:
            `unsupported resource name "${name}": must be one of ${standard.join(", ")} ` +
            `or a domain-prefixed extended resource such as "example.com/gpu"`,
        });
        continue;
      }
      const problems = validateQualifiedName(name);
      if (problems.length > 0) {
        out.push({ field, message: `invalid resource name "${name}": ${problems.join("; ")}` });
        continue;
      }
      if (isReservedPrefix(name.slice(0, slash))) {
        out.push({ field, message: `resource name "${name}" uses the reserved kubernetes.io prefix` });
        continue;
      }
      wholeOnly = true;
    }
    let q: Quantity;
    try {
      q = parseQuantity(map[name]);
    } catch (err) {
      out.push({ field, message: err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (q.milliValue < 0n) {
      out.push({ field, message: `must be greater than or equal to 0, got "${map[name]}"` });
    } else if (wholeOnly && q.milliValue % 1000n !== 0n) {
      out.push({ field, message: `must be a whole number for "${name}", got "${map[name]}"` });
    }
  }
  return out;
}
