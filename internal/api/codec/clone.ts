// The compiled clone: one generated JS function per message type that copies a message the way
// protobuf-es clone() does (a fresh message, nested messages and bytes copied, zero values of
// implicit-presence fields left at create()'s), checking each value's JS type as protobuf-es'
// reflection would. A value of another type or any error make it give up, and the caller clones
// with protobuf-es instead (which then throws its own error or copies what it accepts).
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { GIVE_UP } from "./decode.ts";
import { IMPLICIT, compileCell, zeroExpr } from "./support.ts";

export type CompiledClone = (m: any) => any;
interface Cell { clone: CompiledClone }

type WellFormed = string & { isWellFormed(): boolean }; // ES2024, in Node since 20
const copyBytes = Uint8Array.prototype.slice;
const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n, UINT64_MAX = 2n ** 64n - 1n;

/** Value checks, each returning the value to store or throwing GIVE_UP. */
const helpers = {
  GIVE_UP,
  hasOwn: Object.hasOwn,
  isArray: Array.isArray,
  // protobuf-es' reflection refuses strings that are not well-formed UTF-16 (lone surrogates)
  str(v: unknown): string { if (typeof v !== "string" || !(v as WellFormed).isWellFormed()) throw GIVE_UP; return v; },
  bool(v: unknown): boolean { if (typeof v !== "boolean") throw GIVE_UP; return v; },
  i32(v: unknown): number { if (typeof v !== "number" || (v | 0) !== v) throw GIVE_UP; return v; },
  u32(v: unknown): number { if (typeof v !== "number" || v >>> 0 !== v) throw GIVE_UP; return v; },
  num(v: unknown): number { if (typeof v !== "number") throw GIVE_UP; return v; },
  f32(v: unknown): number { if (typeof v !== "number" || (!Number.isFinite(Math.fround(v)) && Number.isFinite(v))) throw GIVE_UP; return v; },
  i64(v: unknown): bigint { if (typeof v !== "bigint" || v < INT64_MIN || v > INT64_MAX) throw GIVE_UP; return v; },
  u64(v: unknown): bigint { if (typeof v !== "bigint" || v < 0n || v > UINT64_MAX) throw GIVE_UP; return v; },
  // A copy even of a Buffer (decoded bytes are views into the input), whose own slice() is a view
  bytes(v: unknown): Uint8Array { if (!(v instanceof Uint8Array)) throw GIVE_UP; return copyBytes.call(v); },
  setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
    if (key === "__proto__") Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
    else obj[key] = value;
  },
};

const cells = new WeakMap<DescMessage, Cell>();

export function compiledCloner(desc: DescMessage): Cell {
  return compileCell(cells, desc, compiledCloner, generate, helpers, (cell, made) => (cell.clone = made));
}

const q = JSON.stringify;

/** An expression checking (and for bytes, copying) scalar value `x`. */
function checked(t: ScalarType, longAsString: boolean, x: string): string {
  switch (t) {
    case ScalarType.STRING: return `H.str(${x})`;
    case ScalarType.BOOL: return `H.bool(${x})`;
    case ScalarType.BYTES: return `H.bytes(${x})`;
    case ScalarType.INT32: case ScalarType.SINT32: case ScalarType.SFIXED32: return `H.i32(${x})`;
    case ScalarType.UINT32: case ScalarType.FIXED32: return `H.u32(${x})`;
    case ScalarType.DOUBLE: return `H.num(${x})`;
    case ScalarType.FLOAT: return `H.f32(${x})`;
    case ScalarType.INT64: case ScalarType.SINT64: case ScalarType.SFIXED64: return longAsString ? "H.str(H.GIVE_UP)" : `H.i64(${x})`;
    case ScalarType.UINT64: case ScalarType.FIXED64: return longAsString ? "H.str(H.GIVE_UP)" : `H.u64(${x})`;
  }
}

function valueOf(f: DescField, x: string, childIndex: (d: DescMessage) => number): string {
  const msg = f.fieldKind === "message" ? f.message : f.fieldKind === "list" && f.listKind === "message" ? f.message : f.fieldKind === "map" && f.mapKind === "message" ? f.message : undefined;
  if (msg) return `C[${childIndex(msg)}].clone(${x})`;
  const isEnum = f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum") || (f.fieldKind === "map" && f.mapKind === "enum");
  if (isEnum) return `H.i32(${x})`;
  const longAsString = f.fieldKind !== "map" && (f as { longAsString?: boolean }).longAsString === true;
  return checked(f.scalar!, longAsString, x);
}

function generate(desc: DescMessage, childIndex: (d: DescMessage) => number): string {
  const init: string[] = [`$typeName: ${q(desc.typeName)}`];
  const after: string[] = [];
  for (const m of desc.members) {
    const name = q(m.localName);
    if (m.kind === "oneof") {
      const cases = m.fields.map((f) => `case ${q(f.localName)}: c[${name}] = { case: o.case, value: ${valueOf(f, "o.value", childIndex)} }; break;`).join(" ");
      init.push(`${name}: { case: undefined }`);
      after.push(`{ const o = m[${name}]; switch (o.case) { case undefined: break; ${cases} default: throw H.GIVE_UP; } }`);
      continue;
    }
    const f = m;
    if (f.fieldKind === "list") {
      init.push(`${name}: []`);
      after.push(`{ const a = m[${name}]; if (!H.isArray(a)) throw H.GIVE_UP; const out = c[${name}]; for (let i = 0; i < a.length; i++) out.push(${valueOf(f, "a[i]", childIndex)}); }`);
    } else if (f.fieldKind === "map") {
      init.push(`${name}: {}`);
      after.push(`{ const r = m[${name}]; if (r === null || typeof r !== "object") throw H.GIVE_UP; const out = c[${name}]; const keys = Object.keys(r);${f.mapKey === ScalarType.STRING ? "" : " if (keys.length > 0) throw H.GIVE_UP;"} for (let i = 0; i < keys.length; i++) H.setOwn(out, ${f.mapKey === ScalarType.STRING ? "H.str(keys[i])" : "keys[i]"}, ${valueOf(f, "r[keys[i]]", childIndex)}); }`);
    } else if (f.fieldKind === "message" || f.presence !== IMPLICIT) {
      after.push(`{ const v = m[${name}]; if (v !== undefined && H.hasOwn(m, ${name})) c[${name}] = ${valueOf(f, "v", childIndex)}; }`);
    } else {
      // implicit presence: create()'s zero value unless set (bytes copied, never shared)
      const zero = zeroExpr(f);
      const isZero = f.fieldKind === "enum" ? `v === ${zero}` : f.scalar === ScalarType.BYTES ? "(v instanceof Uint8Array && v.byteLength === 0)" : f.scalar === ScalarType.DOUBLE || f.scalar === ScalarType.FLOAT ? "Object.is(v, 0)" : f.scalar === ScalarType.STRING ? 'v === ""' : f.scalar === ScalarType.BOOL ? "v === false" : "v == 0";
      init.push(`${name}: ${zero}`);
      after.push(`{ const v = m[${name}]; if (!(${isZero})) c[${name}] = ${valueOf(f, "v", childIndex)}; }`);
    }
  }
  return `"use strict";
return function clone(m) {
  if (m === null || typeof m !== "object" || m.$typeName !== ${q(desc.typeName)}) throw H.GIVE_UP;
  const c = { ${init.join(", ")} };
  ${after.join("\n  ")}
  const u = m.$unknown;
  if (u !== undefined) { if (!H.isArray(u)) throw H.GIVE_UP; if (u.length > 0) c.$unknown = [...u]; }
  return c;
};`;
}
