// Test support: seeded random messages of any type, filled through protobuf-es' descriptors
// (every field kind, nesting, maps, oneofs, extreme integers, unicode, empty and large bytes).
import { create, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

export { seededRandom as createRandom } from "../../util/seeded-random.ts";

const STRINGS = ["", "a", "lone \ud800 surrogate", "web-7d4b9c8f6-x2x9k", "ünïcødé ✓", "日本語", "emoji 🚀🛶", "\u0000nul", "\ufeffbom", "x".repeat(200), "__proto__", "constructor"];

export function arbitraryMessage(desc: DescMessage, rnd: () => number, depth = 0): any {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const init: Record<string, unknown> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      if (rnd() < 0.3) continue;
      const f = pick(member.fields);
      const value = singular(f, rnd, depth);
      if (value !== undefined) init[member.localName] = { case: f.localName, value };
      continue;
    }
    const f = member;
    if (rnd() < 0.25 || fromDescriptorProto(f)) continue;
    if (f.fieldKind === "list") {
      const n = depth > 3 ? 0 : pick([0, 1, 2, 3, 5]);
      const items = [];
      for (let i = 0; i < n; i++) {
        const v = f.listKind === "message" ? arbitraryMessage(f.message, rnd, depth + 1) : f.listKind === "enum" ? enumValue(f, rnd) : scalar(f.scalar, f.longAsString, rnd);
        items.push(v);
      }
      init[f.localName] = items;
    } else if (f.fieldKind === "map") {
      const n = depth > 3 ? 0 : pick([0, 1, 3]);
      const map: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const key = String(scalar(f.mapKey, false, rnd));
        const v = f.mapKind === "message" ? arbitraryMessage(f.message, rnd, depth + 1) : f.mapKind === "enum" ? enumValue(f, rnd) : scalar(f.scalar, false, rnd);
        if (key === "__proto__") Object.defineProperty(map, key, { value: v, enumerable: true, writable: true, configurable: true });
        else map[key] = v;
      }
      init[f.localName] = map;
    } else {
      const v = singular(f, rnd, depth);
      if (v !== undefined) init[f.localName] = v;
    }
  }
  return create(desc, init as any);
}

/** descriptor.proto's types (proto2, required fields) are protobuf's own schema: left unset. */
function fromDescriptorProto(f: DescField): boolean {
  const m = f.fieldKind === "message" ? f.message : f.fieldKind === "list" && f.listKind === "message" ? f.message : f.fieldKind === "map" && f.mapKind === "message" ? f.message : undefined;
  return m?.file.name === "google/protobuf/descriptor";
}

function singular(f: DescField, rnd: () => number, depth: number): unknown {
  if (f.fieldKind === "message") return depth > 4 ? undefined : arbitraryMessage(f.message, rnd, depth + 1);
  if (f.fieldKind === "enum") return enumValue(f, rnd);
  if (f.fieldKind === "scalar") return scalar(f.scalar, f.longAsString, rnd);
  return undefined;
}

function enumValue(f: DescField, rnd: () => number): number {
  const values = f.enum!.values;
  const r = rnd();
  if (r < 0.1) return 77; // open enums keep numbers they do not name
  if (r < 0.15) return -3;
  return values[Math.floor(rnd() * values.length)].number;
}

function scalar(t: ScalarType, longAsString: boolean, rnd: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const int = (xs: number[]) => (rnd() < 0.5 ? pick(xs) : Math.floor(rnd() * 2 ** 20));
  const long = (xs: bigint[]) => {
    const v = rnd() < 0.6 ? pick(xs) : BigInt(Math.floor(rnd() * 2 ** 40));
    return longAsString ? v.toString() : v;
  };
  switch (t) {
    case ScalarType.STRING: return pick(STRINGS);
    case ScalarType.BYTES: {
      const n = pick([0, 1, 7, 300, 70000]);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
      return b;
    }
    case ScalarType.BOOL: return rnd() < 0.5;
    case ScalarType.DOUBLE: return pick([0, -0, 1.5, -2.25e300, Number.NaN, Infinity, -Infinity, Number.MIN_VALUE, rnd() * 1e6]);
    case ScalarType.FLOAT: return pick([0, -0, 1.5, -3.25, Number.NaN, Infinity, 16777216]);
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32:
      return int([0, 1, -1, 127, 128, 2147483647, -2147483648, 300]);
    case ScalarType.UINT32: case ScalarType.FIXED32:
      return int([0, 1, 127, 128, 4294967295, 2147483648]);
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64:
      return long([0n, 1n, -1n, 9223372036854775807n, -9223372036854775808n, 2n ** 53n + 1n]);
    case ScalarType.UINT64: case ScalarType.FIXED64:
      return long([0n, 1n, 18446744073709551615n, 2n ** 63n]);
  }
}

/**
 * Where two decoded messages differ (prototype, own keys, Object.is on values, bytes content),
 * or undefined. vitest's toStrictEqual cannot be used: it reads a map key named "constructor"
 * as the object's class.
 */
export function firstDifference(a: any, b: any, path = "$"): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (typeof a !== typeof b) return `${path}: ${typeof a} vs ${typeof b}`;
  if (typeof a !== "object" || a === null || b === null) return `${path}: ${String(a)} vs ${String(b)}`;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: different prototypes`;
  if (a instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]) ? undefined : `${path}: different bytes`;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.join("\u0000") !== kb.join("\u0000")) return `${path}: keys [${ka.join(", ")}] vs [${kb.join(", ")}]`;
  for (const k of ka) {
    const d = firstDifference(a[k], b[k], `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}
