// Which message types the compiled codec handles itself. Everything else goes to protobuf-es
// whole, so a result never depends on which path ran.
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

const EDITION_PROTO3 = 999;
export const IMPLICIT = 2; // FeatureSet.FieldPresence.IMPLICIT

// protobuf-es v2 represents these differently from their fields (wrappers unboxed to a scalar,
// Struct as a JSON object), and the compiled code only knows the plain message shape.
const SPECIAL_TYPES = new Set([
  "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
  "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
  "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
  "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
]);

const verdicts = new WeakMap<DescMessage, boolean>();

/**
 * A proto3 message whose fields (and nested messages, transitively) use only the plain shape:
 * no groups, no closed enums, no default values, no unboxed well-known types.
 */
export function isCompilable(desc: DescMessage): boolean {
  const known = verdicts.get(desc);
  if (known !== undefined) return known;
  // Every message type reachable from desc is checked, walked with a seen set rather than by
  // recursion: a recursive verdict had to assume "yes" for a type on a cycle, and a type reached
  // through it kept that "yes" even when the cycle's start turned out not compilable.
  const seen = new Set<DescMessage>([desc]);
  const todo = [desc];
  let ok = true;
  while (ok && todo.length > 0) {
    const d = todo.pop()!;
    const verdict = verdicts.get(d);
    if (verdict === true) continue; // everything reachable from it was checked already
    if (verdict === false || !hasPlainShape(d)) ok = false;
    else {
      for (const child of childMessages(d)) {
        if (!seen.has(child)) {
          seen.add(child);
          todo.push(child);
        }
      }
    }
  }
  // When ok, every type seen was reached from desc and checked: all compilable.
  if (ok) for (const d of seen) verdicts.set(d, true);
  else verdicts.set(desc, false);
  return ok;
}

/** This type's own fields, not looking into the message types they hold. */
function hasPlainShape(desc: DescMessage): boolean {
  if (desc.file.edition !== EDITION_PROTO3 || SPECIAL_TYPES.has(desc.typeName)) return false;
  return desc.fields.every(isPlainField);
}

function isPlainField(f: DescField): boolean {
  if ("delimitedEncoding" in f && f.delimitedEncoding) return false;
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum") || (f.fieldKind === "map" && f.mapKind === "enum")) {
    if (!f.enum!.open) return false;
  }
  return !((f.fieldKind === "scalar" || f.fieldKind === "enum") && f.getDefaultValue() !== undefined);
}

function childMessages(desc: DescMessage): DescMessage[] {
  const out: DescMessage[] = [];
  for (const f of desc.fields) {
    const msg = f.fieldKind === "message" ? f.message : f.fieldKind === "list" && f.listKind === "message" ? f.message : f.fieldKind === "map" && f.mapKind === "message" ? f.message : undefined;
    if (msg) out.push(msg);
  }
  return out;
}

/** A JS expression for the zero value of a singular scalar or enum field. */
export function zeroExpr(f: DescField): string {
  if (f.fieldKind === "enum") return String(f.enum.values[0].number);
  if (f.fieldKind !== "scalar") throw new Error(`no zero value for ${f.fieldKind} field`);
  return scalarZeroExpr(f.scalar, f.longAsString);
}

export function scalarZeroExpr(t: ScalarType, longAsString: boolean): string {
  switch (t) {
    case ScalarType.STRING: return '""';
    case ScalarType.BOOL: return "false";
    case ScalarType.BYTES: return "new Uint8Array(0)";
    case ScalarType.INT64: case ScalarType.UINT64: case ScalarType.FIXED64: case ScalarType.SFIXED64: case ScalarType.SINT64:
      return longAsString ? '"0"' : "0n";
    default: return "0";
  }
}

/**
 * Compiles one generated function set per message type, cached in `cells`: the cell is cached
 * before its children are compiled, so a recursive type finds it; `generate` names each child
 * message type by its index in the children array the generated code receives as C; `install`
 * puts what the generated code returned into the cell.
 */
export function compileCell<Cell extends object>(
  cells: WeakMap<DescMessage, Cell>,
  desc: DescMessage,
  compileChild: (d: DescMessage) => Cell,
  generate: (desc: DescMessage, childIndex: (d: DescMessage) => number) => string,
  helpers: object,
  install: (cell: Cell, made: any) => void,
): Cell {
  let cell = cells.get(desc);
  if (cell) return cell;
  cell = {} as Cell;
  cells.set(desc, cell);
  const children: Cell[] = [];
  const childIndex = (d: DescMessage): number => {
    const c = compileChild(d);
    let i = children.indexOf(c);
    if (i < 0) i = children.push(c) - 1;
    return i;
  };
  try {
    const src = generate(desc, childIndex);
    // Safe to compile: the source is built only from the descriptor (compiled into this program
    // from gen/), every name and string in it quoted with JSON.stringify; nothing from a request
    // or from the message or bytes being handled reaches the generator.
    install(cell, new Function("H", "C", src)(helpers, children));
  } catch (err) {
    cells.delete(desc); // no empty cell left behind (node may refuse code generation)
    throw err;
  }
  return cell;
}
