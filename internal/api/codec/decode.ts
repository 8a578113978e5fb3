// The compiled decoder: one generated JS function per message type, specialized to its field
// numbers, wire types and property names. It handles the wire as protobuf-es does for every
// input it accepts; on anything else (an unknown field, an unexpected wire type, a read past the
// end of a message, invalid UTF-8, the recursion limit, any error) it gives up and the caller
// decodes the whole input again with protobuf-es, so results and errors never differ.
import { ScalarType, protoInt64, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, getTextEncoding } from "@bufbuild/protobuf/wire";
import { isUtf8 } from "node:buffer";
import { compileCell, scalarZeroExpr, zeroExpr } from "./support.ts";

export type CompiledDecode = (r: BinaryReader, nb: Buffer, end: number, depth: number, m: any) => any;
interface Cell { decode: CompiledDecode; create: () => any }

/** Thrown by compiled code when it does not handle the input; never leaves this folder. */
export const GIVE_UP = new Error("compiled decoder gave up");
/** BinaryReader's fields the helpers read directly (TypeScript marks buf private). */
type WireReader = { buf: Uint8Array; pos: number };
const RECURSION_LIMIT = 100; // protobuf-es' default

const textDecoding = getTextEncoding();

/**
 * Buffer's native slicers, which Buffer.toString calls after checking its arguments (those
 * checks were a visible share of decoding in profiles); the bounds are checked by the caller.
 */
type NodeSlices = Buffer & { latin1Slice?(start: number, end: number): string; utf8Slice?(start: number, end: number): string };
// They are not documented: a Node without them gets Buffer.toString (same strings, a little slower).
const native = Buffer.prototype as NodeSlices;
const latin1: (nb: Buffer, s: number, e: number) => string =
  typeof native.latin1Slice === "function" ? (nb, s, e) => (nb as NodeSlices).latin1Slice!(s, e) : (nb, s, e) => nb.toString("latin1", s, e);
const utf8: (nb: Buffer, s: number, e: number) => string =
  typeof native.utf8Slice === "function" ? (nb, s, e) => (nb as NodeSlices).utf8Slice!(s, e) : (nb, s, e) => nb.toString("utf8", s, e);

/** The helpers generated code calls; every name it uses is listed here. */
const helpers = {
  GIVE_UP,
  protoInt64,
  /** A varint32 as protobuf-es' BinaryReader.uint32 reads it (at r.pos, advancing it). */
  u32(r: WireReader): number {
    const b = r.buf;
    let p = r.pos;
    let x = b[p++];
    let v = x & 0x7f;
    if (x < 0x80) { r.pos = p; return v; }
    x = b[p++]; v |= (x & 0x7f) << 7;
    if (x < 0x80) { r.pos = p; return v; }
    x = b[p++]; v |= (x & 0x7f) << 14;
    if (x < 0x80) { r.pos = p; return v; }
    x = b[p++]; v |= (x & 0x7f) << 21;
    if (x < 0x80) { r.pos = p; return v; }
    x = b[p++]; v |= (x & 0x0f) << 28;
    for (let n = 5; (x & 0x80) !== 0 && n < 10; n++) x = b[p++];
    if ((x & 0x80) !== 0 || x === undefined) throw GIVE_UP;
    r.pos = p;
    return v >>> 0;
  },
  /** A tag longer than one byte; protobuf-es refuses tags that overflow uint32. */
  tag(r: WireReader): number {
    const start = r.pos;
    const t = helpers.u32(r);
    const n = r.pos - start;
    if (n > 5 || (n === 5 && r.buf[r.pos - 1] > 0x0f)) throw GIVE_UP;
    return t;
  },
  /** A string field's text: ASCII copied directly, other text checked as UTF-8 when the field asks. */
  str(b: Uint8Array, nb: Buffer, s: number, e: number, strict: boolean): string {
    for (let i = s; i < e; i++) {
      if (b[i] > 0x7f) {
        if (!strict) return textDecoding.decodeUtf8(b.subarray(s, e), false);
        if (!isUtf8(b.subarray(s, e))) throw GIVE_UP; // protobuf-es throws: it decides with which words
        return utf8(nb, s, e);
      }
    }
    if (e - s < 16) {
      let out = "";
      for (let i = s; i < e; i++) out += String.fromCharCode(b[i]);
      return out;
    }
    return latin1(nb, s, e);
  },
  setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
    if (key === "__proto__") Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
    else obj[key] = value;
  },
};

const cells = new WeakMap<DescMessage, Cell>();

/** The compiled decoder of a message type (compilable: see support.ts), compiled on first use. */
export function compiledDecoder(desc: DescMessage): Cell {
  return compileCell(cells, desc, compiledDecoder, generate, helpers, (cell, made) => Object.assign(cell, made));
}

const q = JSON.stringify;
const WT = { varint: 0, bit64: 1, len: 2, bit32: 5 };

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.STRING: case ScalarType.BYTES: return WT.len;
    case ScalarType.DOUBLE: case ScalarType.FIXED64: case ScalarType.SFIXED64: return WT.bit64;
    case ScalarType.FLOAT: case ScalarType.FIXED32: case ScalarType.SFIXED32: return WT.bit32;
    default: return WT.varint;
  }
}

/** Statements reading a varint32 into `n` (inline one-byte case). */
const READ_N = "n = b[p++]; if (n > 127) { r.pos = p - 1; n = H.u32(r); p = r.pos; } if (p > end) throw H.GIVE_UP;";
/** Statements reading a length into `n` and checking it stays inside this message. */
const READ_LEN = "n = b[p++]; if (n > 127) { r.pos = p - 1; n = H.u32(r); p = r.pos; } if (!(p + n <= end)) throw H.GIVE_UP;";

/** Statements that read one scalar value into `v`; `p` and `n` are the generated locals. */
function readScalar(t: ScalarType, strict: boolean, longAsString: boolean): string {
  const viaReader = (method: string) =>
    `r.pos = p; v = ${longAsString ? `String(r.${method}())` : `r.${method}()`}; p = r.pos; if (p > end) throw H.GIVE_UP;`;
  switch (t) {
    case ScalarType.STRING: return `${READ_LEN} v = n === 0 ? "" : H.str(b, nb, p, p + n, ${strict}); p += n;`;
    case ScalarType.BYTES: return `${READ_LEN} v = b.subarray(p, p + n); p += n;`;
    case ScalarType.INT32: return `${READ_N} v = n | 0;`;
    case ScalarType.UINT32: return `${READ_N} v = n;`;
    case ScalarType.SINT32: return `${READ_N} v = (n >>> 1) ^ -(n & 1);`;
    case ScalarType.BOOL: return `n = b[p]; if (n < 128) { p++; v = n !== 0; } else { ${viaReader("bool")} } if (p > end) throw H.GIVE_UP;`;
    case ScalarType.INT64: return viaReader("int64");
    case ScalarType.UINT64: return viaReader("uint64");
    case ScalarType.SINT64: return viaReader("sint64");
    case ScalarType.FIXED64: return viaReader("fixed64");
    case ScalarType.SFIXED64: return viaReader("sfixed64");
    case ScalarType.FIXED32: return viaReader("fixed32");
    case ScalarType.SFIXED32: return viaReader("sfixed32");
    case ScalarType.FLOAT: return viaReader("float");
    case ScalarType.DOUBLE: return viaReader("double");
  }
}

/** Reads a nested message body of length `n` into `v`, merging into `into`. */
function readChild(ci: number, into: string): string {
  return `${READ_LEN} r.pos = p; v = C[${ci}].decode(r, nb, p + n, depth + 1, ${into}); p = r.pos;`;
}

function generate(desc: DescMessage, childIndex: (d: DescMessage) => number): string {
  const init: string[] = [`$typeName: ${q(desc.typeName)}`];
  for (const m of desc.members) {
    if (m.kind === "oneof") { init.push(`${q(m.localName)}: { case: undefined }`); continue; }
    if (m.fieldKind === "list") init.push(`${q(m.localName)}: []`);
    else if (m.fieldKind === "map") init.push(`${q(m.localName)}: {}`);
    else if ((m.fieldKind === "scalar" || m.fieldKind === "enum") && m.presence === 2) init.push(`${q(m.localName)}: ${zeroExpr(m)}`);
  }
  const cases = desc.fields.map((f) => fieldCases(f, childIndex)).join("\n");
  return `"use strict";
function create() { return { ${init.join(", ")} }; }
function decode(r, nb, end, depth, m) {
  if (depth > ${RECURSION_LIMIT}) throw H.GIVE_UP;
  if (m === undefined) m = create();
  const b = r.buf;
  let p = r.pos, t = 0, n = 0, v;
  while (p < end) {
    t = b[p++];
    if (t > 127) { r.pos = p - 1; t = H.tag(r); p = r.pos; }
    switch (t) {
${cases}
      default: throw H.GIVE_UP;
    }
  }
  if (p !== end) throw H.GIVE_UP;
  r.pos = p;
  return m;
}
return { decode, create };`;
}

function tagOf(no: number, wt: number): number {
  return ((no << 3) | wt) >>> 0;
}

function fieldCases(f: DescField, childIndex: (d: DescMessage) => number): string {
  const name = q(f.localName);
  const strict = f.utf8Validation;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      const t = f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar;
      const read = readScalar(t, strict, f.fieldKind === "scalar" && f.longAsString);
      const store = f.oneof ? `m[${q(f.oneof.localName)}] = { case: ${name}, value: v };` : `m[${name}] = v;`;
      return `      case ${tagOf(f.number, wireTypeOf(t))}: { ${read} ${store} break; }`;
    }
    case "message": {
      const ci = childIndex(f.message);
      if (f.oneof) {
        const o = q(f.oneof.localName);
        return `      case ${tagOf(f.number, WT.len)}: { const o = m[${o}]; ${readChild(ci, `o.case === ${name} ? o.value : undefined`)} m[${o}] = { case: ${name}, value: v }; break; }`;
      }
      return `      case ${tagOf(f.number, WT.len)}: { ${readChild(ci, `m[${name}]`)} m[${name}] = v; break; }`;
    }
    case "list": {
      if (f.listKind === "message") {
        return `      case ${tagOf(f.number, WT.len)}: { ${readChild(childIndex(f.message), "undefined")} m[${name}].push(v); break; }`;
      }
      const t = f.listKind === "enum" ? ScalarType.INT32 : f.scalar;
      const read = readScalar(t, strict, f.listKind === "scalar" && f.longAsString);
      const wt = wireTypeOf(t);
      const one = `      case ${tagOf(f.number, wt)}: { ${read} m[${name}].push(v); break; }`;
      if (wt === WT.len) return one;
      // Packed: the values of one length-delimited record, read to its end ("end" shadowed).
      return `${one}
      case ${tagOf(f.number, WT.len)}: { ${READ_LEN} const items = m[${name}]; const outer = end; { const end = p + n; while (p < end) { ${read} items.push(v); } if (p !== end) throw H.GIVE_UP; } if (p > outer) throw H.GIVE_UP; break; }`;
    }
    case "map": {
      const keyWt = wireTypeOf(f.mapKey);
      const keyRead = readScalar(f.mapKey, strict, false).replaceAll("v = ", "k = ").replaceAll("v;", "k;");
      let valueRead: string;
      let valueWt: number;
      let valueZero: string;
      if (f.mapKind === "message") {
        const ci = childIndex(f.message);
        valueRead = readChild(ci, "val");
        valueWt = WT.len;
        valueZero = `C[${ci}].create()`;
      } else {
        const t = f.mapKind === "enum" ? ScalarType.INT32 : f.scalar;
        valueRead = readScalar(t, strict, false);
        valueWt = wireTypeOf(t);
        valueZero = f.mapKind === "enum" ? String(f.enum.values[0].number) : scalarZeroExpr(t, false);
      }
      // One entry: key (1) and value (2) in any order, either missing (zero value), read to the entry's end.
      return `      case ${tagOf(f.number, WT.len)}: { ${READ_LEN} let k = ${scalarZeroExpr(f.mapKey, false)}, val; const outer = end; { const end = p + n;
        while (p < end) {
          t = b[p++]; if (t > 127) { r.pos = p - 1; t = H.tag(r); p = r.pos; }
          if (t === ${tagOf(1, keyWt)}) { ${keyRead} }
          else if (t === ${tagOf(2, valueWt)}) { ${valueRead} val = v; }
          else throw H.GIVE_UP;
        }
        if (p !== end) throw H.GIVE_UP; }
        if (p > outer) throw H.GIVE_UP;
        H.setOwn(m[${name}], k, val === undefined ? ${valueZero} : val); break; }`;
    }
  }
}
