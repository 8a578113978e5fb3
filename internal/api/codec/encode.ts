// The compiled encoder: one generated JS function per message type that writes the fields in
// field-number order with protobuf-es' presence rules, so the bytes equal toBinary's. It checks
// each value's JS type as it goes; a value of another type (which protobuf-es would coerce or
// refuse), `$unknown` fields, or any error make it give up, and the caller encodes the message
// with protobuf-es instead.
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { GIVE_UP } from "./decode.ts";
import { IMPLICIT, compileCell } from "./support.ts";
import type { Writer } from "./writer.ts";

export type CompiledEncode = (w: Writer, m: any) => void;
interface Cell { encode: CompiledEncode }

const helpers = {
  GIVE_UP,
  hasOwn: Object.hasOwn,
  isArray: Array.isArray,
  fround: Math.fround,
  isFinite: Number.isFinite,
};

const cells = new WeakMap<DescMessage, Cell>();

export function compiledEncoder(desc: DescMessage): Cell {
  return compileCell(cells, desc, compiledEncoder, generate, helpers, (cell, made) => (cell.encode = made));
}

const q = JSON.stringify;

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING: case ScalarType.BYTES: return 2;
    case ScalarType.DOUBLE: case ScalarType.FIXED64: case ScalarType.SFIXED64: return 1;
    case ScalarType.FLOAT: case ScalarType.FIXED32: case ScalarType.SFIXED32: return 5;
    default: return 0;
  }
}

/** Statements writing the tag's varint bytes (constant per field). */
function writeTag(no: number, wt: number): string {
  return `w.u32(${((no << 3) | wt) >>> 0});`;
}

/** Statements writing scalar `v` (no tag), giving up on a JS type protobuf-es would coerce. */
function writeScalar(t: ScalarType): string {
  const GU = "throw H.GIVE_UP;";
  switch (t) {
    case ScalarType.STRING: return `if (typeof v !== "string") ${GU} w.str(v);`;
    case ScalarType.BYTES: return `if (!(v instanceof Uint8Array)) ${GU} w.bytes(v);`;
    case ScalarType.BOOL: return `if (typeof v !== "boolean") ${GU} w.ensure(1); w.buf[w.pos++] = v ? 1 : 0;`;
    case ScalarType.INT32: return `if (typeof v !== "number" || (v | 0) !== v) ${GU} w.i32(v);`;
    case ScalarType.UINT32: return `if (typeof v !== "number" || v >>> 0 !== v) ${GU} w.u32(v);`;
    case ScalarType.SINT32: return `if (typeof v !== "number" || (v | 0) !== v) ${GU} w.u32(((v << 1) ^ (v >> 31)) >>> 0);`;
    case ScalarType.FIXED32: return `if (typeof v !== "number" || v >>> 0 !== v) ${GU} w.ensure(4); w.view.setUint32(w.pos, v, true); w.pos += 4;`;
    case ScalarType.SFIXED32: return `if (typeof v !== "number" || (v | 0) !== v) ${GU} w.ensure(4); w.view.setInt32(w.pos, v, true); w.pos += 4;`;
    case ScalarType.FLOAT: return `if (typeof v !== "number" || (!H.isFinite(H.fround(v)) && H.isFinite(v))) ${GU} w.ensure(4); w.view.setFloat32(w.pos, v, true); w.pos += 4;`;
    case ScalarType.DOUBLE: return `if (typeof v !== "number") ${GU} w.ensure(8); w.view.setFloat64(w.pos, v, true); w.pos += 8;`;
    // 64-bit values go through protobuf-es' own conversion (protoInt64), which throws where its writer throws
    case ScalarType.INT64: return "w.i64(v);";
    case ScalarType.UINT64: return "w.u64(v);";
    case ScalarType.SINT64: return "w.s64(v);";
    case ScalarType.FIXED64: return "w.fixed64(v, false);";
    case ScalarType.SFIXED64: return "w.fixed64(v, true);";
  }
}

/** protobuf-es' implicit-presence test: is `v` set (not the zero value)? */
function isSetExpr(f: DescField & { fieldKind: "scalar" | "enum" }): string {
  if (f.fieldKind === "enum") return `v !== ${f.enum.values[0].number}`;
  switch (f.scalar) {
    case ScalarType.BOOL: return "v !== false";
    case ScalarType.STRING: return 'v !== ""';
    case ScalarType.BYTES: return "(!(v instanceof Uint8Array) || v.byteLength > 0)";
    case ScalarType.DOUBLE: case ScalarType.FLOAT: return "!Object.is(v, 0)";
    default: return "v != 0";
  }
}

function writeChild(no: number, ci: number, typeName: string): string {
  return `if (v === null || typeof v !== "object" || v.$typeName !== ${q(typeName)}) throw H.GIVE_UP; ${writeTag(no, 2)} { const s = w.fork(); C[${ci}].encode(w, v); w.join(s); }`;
}

function generate(desc: DescMessage, childIndex: (d: DescMessage) => number): string {
  const sorted = desc.fields.concat().sort((a, b) => a.number - b.number);
  const body = sorted.map((f) => fieldCode(f, childIndex)).join("\n  ");
  return `"use strict";
return function encode(w, m) {
  let v;
  const u = m.$unknown;
  if (u !== undefined && !(H.isArray(u) && u.length === 0)) throw H.GIVE_UP;
  ${body}
};`;
}

function fieldCode(f: DescField, childIndex: (d: DescMessage) => number): string {
  const name = q(f.localName);
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const t = f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar;
      const write = `${writeTag(f.number, wireTypeOf(t))} ${writeScalar(t)}`;
      if (f.oneof) return `{ const o = m[${q(f.oneof.localName)}]; if (o.case === ${name}) { v = o.value; ${write} } }`;
      if (f.presence !== IMPLICIT) return `v = m[${name}]; if (v !== undefined && H.hasOwn(m, ${name})) { ${write} }`;
      return `v = m[${name}]; if (${isSetExpr(f)}) { ${write} }`;
    }
    case "message": {
      const write = writeChild(f.number, childIndex(f.message), f.message.typeName);
      if (f.oneof) return `{ const o = m[${q(f.oneof.localName)}]; if (o.case === ${name}) { v = o.value; ${write} } }`;
      return `v = m[${name}]; if (v !== undefined && H.hasOwn(m, ${name})) { ${write} }`;
    }
    case "list": {
      const loop = (inner: string) => `{ const items = m[${name}]; if (!H.isArray(items)) throw H.GIVE_UP; for (let i = 0; i < items.length; i++) { v = items[i]; ${inner} } }`;
      if (f.listKind === "message") return loop(writeChild(f.number, childIndex(f.message), f.message.typeName));
      const t = f.listKind === "enum" ? ScalarType.INT32 : f.scalar;
      if (f.packed) {
        return `{ const items = m[${name}]; if (!H.isArray(items)) throw H.GIVE_UP; if (items.length > 0) { ${writeTag(f.number, 2)} const s = w.fork(); for (let i = 0; i < items.length; i++) { v = items[i]; ${writeScalar(t)} } w.join(s); } }`;
      }
      return loop(`${writeTag(f.number, wireTypeOf(t))} ${writeScalar(t)}`);
    }
    case "map": {
      // Keys are object keys (strings); only string-keyed maps are compiled, others give up when non-empty.
      const entry = f.mapKey !== ScalarType.STRING
        ? "throw H.GIVE_UP;"
        : (() => {
          let value: string;
          if (f.mapKind === "message") {
            const ci = childIndex(f.message);
            value = `if (v === null || typeof v !== "object" || v.$typeName !== ${q(f.message.typeName)}) throw H.GIVE_UP; ${writeTag(2, 2)} { const s2 = w.fork(); C[${ci}].encode(w, v); w.join(s2); }`;
          } else {
            const t = f.mapKind === "enum" ? ScalarType.INT32 : f.scalar;
            value = `${writeTag(2, wireTypeOf(t))} ${writeScalar(t)}`;
          }
          return `${writeTag(f.number, 2)} const s = w.fork(); ${writeTag(1, 2)} w.str(k); v = rec[k]; ${value} w.join(s);`;
        })();
      return `{ const rec = m[${name}]; const keys = Object.keys(rec); for (let i = 0; i < keys.length; i++) { const k = keys[i]; ${entry} } }`;
    }
  }
}
