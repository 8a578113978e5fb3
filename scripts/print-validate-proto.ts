// Prints buf/validate/validate.proto back as proto source, from the compiled FileDescriptorProto
// that @bufbuild/protovalidate ships (the npm package has no .proto file). buf needs the source to
// compile `[(buf.validate.field) …]` options in proto/; generated code still imports the package's
// own descriptor (see rewrite_imports in buf.gen.yaml), so this file only has to be wire-identical:
// same messages, fields, numbers, types, labels, oneofs, enums, ranges and extensions. Options are
// dropped (except `packed`, which changes the encoding), and so are comments.
//
// Usage: npm run vendor:protovalidate            writes vendor/proto/buf/validate/validate.proto
//        node scripts/print-validate-proto.ts -   prints to stdout instead
// The output depends only on the descriptor, so every run with the same package version is identical.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { isFieldSet } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import type {
  DescriptorProto,
  EnumDescriptorProto,
  FieldDescriptorProto,
  FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

const OUT_FILE = join(import.meta.dirname, "..", "vendor", "proto", "buf", "validate", "validate.proto");
const PACKAGE_NAME = "@bufbuild/protovalidate";
/** One past the largest field number: `to max` in extension ranges. */
const FIELD_NUMBER_END = 536_870_912;
const INDENT = "  ";
// Proto2 fields of protobuf-es messages read as their default when unset: ask for presence.
const FIELD = FieldDescriptorProtoSchema.field;

const SCALAR_NAMES: Partial<Record<FieldDescriptorProto_Type, string>> = {
  [FieldDescriptorProto_Type.DOUBLE]: "double",
  [FieldDescriptorProto_Type.FLOAT]: "float",
  [FieldDescriptorProto_Type.INT64]: "int64",
  [FieldDescriptorProto_Type.UINT64]: "uint64",
  [FieldDescriptorProto_Type.INT32]: "int32",
  [FieldDescriptorProto_Type.FIXED64]: "fixed64",
  [FieldDescriptorProto_Type.FIXED32]: "fixed32",
  [FieldDescriptorProto_Type.BOOL]: "bool",
  [FieldDescriptorProto_Type.STRING]: "string",
  [FieldDescriptorProto_Type.BYTES]: "bytes",
  [FieldDescriptorProto_Type.UINT32]: "uint32",
  [FieldDescriptorProto_Type.SFIXED32]: "sfixed32",
  [FieldDescriptorProto_Type.SFIXED64]: "sfixed64",
  [FieldDescriptorProto_Type.SINT32]: "sint32",
  [FieldDescriptorProto_Type.SINT64]: "sint64",
};

/** The version of the installed package, read from its package.json (not in its "exports"). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.resolve(PACKAGE_NAME)));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === PACKAGE_NAME && pkg.version) return pkg.version;
    } catch {
      // no package.json at this level; keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package.json of ${PACKAGE_NAME}`);
    dir = parent;
  }
}

/** protoc's default JSON name: drop underscores, upper-case the letter after each. */
function defaultJsonName(name: string): string {
  return name.replace(/_+([a-z0-9]?)/g, (_m, c: string) => c.toUpperCase());
}

function quote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

class Printer {
  private readonly lines: string[] = [];
  private readonly pkg: string;
  /** Every simple name declared anywhere in the file: a relative reference must not be shadowed. */
  private readonly declared = new Set<string>();
  private readonly file: FileDescriptorProto;

  constructor(file: FileDescriptorProto) {
    this.file = file;
    this.pkg = file.package;
    const collect = (m: DescriptorProto) => {
      this.declared.add(m.name);
      m.enumType.forEach((e) => this.declared.add(e.name));
      m.nestedType.forEach(collect);
    };
    file.messageType.forEach(collect);
    file.enumType.forEach((e) => this.declared.add(e.name));
  }

  private line(depth: number, text: string): void {
    this.lines.push(text === "" ? "" : INDENT.repeat(depth) + text);
  }

  /** A type reference: relative to our package where that cannot be misread, else fully qualified. */
  private typeRef(fullName: string): string {
    const name = fullName.replace(/^\./, "");
    const prefix = this.pkg === "" ? "" : this.pkg + ".";
    if (prefix !== "" && name.startsWith(prefix)) return name.slice(prefix.length);
    const first = name.split(".")[0];
    const pkgParts = this.pkg.split(".");
    if (this.declared.has(first) || pkgParts.includes(first)) return "." + name;
    return name;
  }

  private typeName(field: FieldDescriptorProto): string {
    switch (field.type) {
      case FieldDescriptorProto_Type.MESSAGE:
      case FieldDescriptorProto_Type.ENUM:
        return this.typeRef(field.typeName);
      case FieldDescriptorProto_Type.GROUP:
        throw new Error(`field ${field.name}: groups are not supported`);
      default: {
        const scalar = SCALAR_NAMES[field.type];
        if (scalar === undefined) throw new Error(`field ${field.name}: unknown type ${field.type}`);
        return scalar;
      }
    }
  }

  private fieldOptions(field: FieldDescriptorProto): string {
    const opts: string[] = [];
    if (isFieldSet(field, FIELD.defaultValue)) {
      const v = field.defaultValue;
      if (field.type === FieldDescriptorProto_Type.STRING) opts.push(`default = ${quote(v)}`);
      // bytes defaults are stored C-escaped already
      else if (field.type === FieldDescriptorProto_Type.BYTES) opts.push(`default = "${v}"`);
      else opts.push(`default = ${v}`);
    }
    if (isFieldSet(field, FIELD.jsonName) && field.jsonName !== defaultJsonName(field.name)) {
      opts.push(`json_name = ${quote(field.jsonName)}`);
    }
    if (field.options !== undefined && isFieldSet(field.options, FieldOptionsSchema.field.packed)) {
      opts.push(`packed = ${field.options.packed}`);
    }
    return opts.length === 0 ? "" : ` [${opts.join(", ")}]`;
  }

  private field(depth: number, field: FieldDescriptorProto, inOneof: boolean, mapEntry?: DescriptorProto): void {
    let label = "";
    if (mapEntry === undefined && !inOneof) {
      if (field.label === FieldDescriptorProto_Label.REPEATED) label = "repeated ";
      else if (field.label === FieldDescriptorProto_Label.REQUIRED) label = "required ";
      else if (this.file.syntax !== "proto3" || field.proto3Optional) label = "optional ";
    }
    let type: string;
    if (mapEntry !== undefined) {
      const [k, v] = [mapEntry.field.find((f) => f.number === 1), mapEntry.field.find((f) => f.number === 2)];
      if (k === undefined || v === undefined) throw new Error(`map entry ${mapEntry.name} lacks key or value`);
      type = `map<${this.typeName(k)}, ${this.typeName(v)}>`;
    } else {
      type = this.typeName(field);
    }
    this.line(depth, `${label}${type} ${field.name} = ${field.number}${this.fieldOptions(field)};`);
  }

  private enumType(depth: number, e: EnumDescriptorProto): void {
    this.line(depth, `enum ${e.name} {`);
    for (const v of e.value) this.line(depth + 1, `${v.name} = ${v.number};`);
    // enum reserved ranges are inclusive at both ends
    const ranges = e.reservedRange.map((r) => (r.start === r.end ? `${r.start}` : `${r.start} to ${r.end}`));
    if (ranges.length > 0) this.line(depth + 1, `reserved ${ranges.join(", ")};`);
    if (e.reservedName.length > 0) this.line(depth + 1, `reserved ${e.reservedName.map(quote).join(", ")};`);
    this.line(depth, "}");
  }

  /** `extend X { … }` blocks; consecutive extensions of one extendee share a block, order is kept. */
  private extensions(depth: number, exts: FieldDescriptorProto[]): void {
    let i = 0;
    while (i < exts.length) {
      const extendee = exts[i].extendee;
      this.line(depth, `extend ${this.typeRef(extendee)} {`);
      for (; i < exts.length && exts[i].extendee === extendee; i++) this.field(depth + 1, exts[i], false);
      this.line(depth, "}");
    }
  }

  private message(depth: number, m: DescriptorProto): void {
    this.line(depth, `message ${m.name} {`);
    const inner = depth + 1;
    const mapEntries = new Map<string, DescriptorProto>();
    for (const n of m.nestedType) {
      if (n.options?.mapEntry) mapEntries.set(n.name, n);
    }
    const entryFor = (f: FieldDescriptorProto) =>
      f.label === FieldDescriptorProto_Label.REPEATED && f.type === FieldDescriptorProto_Type.MESSAGE
        ? mapEntries.get(f.typeName.slice(f.typeName.lastIndexOf(".") + 1))
        : undefined;
    // Proto3 optional fields live in a synthetic oneof that has no source form.
    const realOneof = (f: FieldDescriptorProto) => isFieldSet(f, FIELD.oneofIndex) && !f.proto3Optional;
    const printedOneofs = new Set<number>();
    for (const f of m.field) {
      if (!realOneof(f)) {
        this.field(inner, f, false, entryFor(f));
        continue;
      }
      const index = f.oneofIndex;
      if (printedOneofs.has(index)) continue;
      printedOneofs.add(index);
      this.line(inner, `oneof ${m.oneofDecl[index].name} {`);
      for (const member of m.field) {
        if (realOneof(member) && member.oneofIndex === index) this.field(inner + 1, member, true);
      }
      this.line(inner, "}");
    }
    for (const e of m.enumType) this.enumType(inner, e);
    for (const n of m.nestedType) {
      if (!n.options?.mapEntry) this.message(inner, n);
    }
    for (const r of m.extensionRange) {
      const end = r.end >= FIELD_NUMBER_END ? "max" : `${r.end - 1}`;
      this.line(inner, r.end - 1 === r.start ? `extensions ${r.start};` : `extensions ${r.start} to ${end};`);
    }
    // message reserved ranges are exclusive at the end
    const ranges = m.reservedRange.map((r) => {
      const end = r.end >= FIELD_NUMBER_END ? "max" : `${r.end - 1}`;
      return r.end - 1 === r.start ? `${r.start}` : `${r.start} to ${end}`;
    });
    if (ranges.length > 0) this.line(inner, `reserved ${ranges.join(", ")};`);
    if (m.reservedName.length > 0) this.line(inner, `reserved ${m.reservedName.map(quote).join(", ")};`);
    this.extensions(inner, m.extension);
    this.line(depth, "}");
  }

  print(version: string): string {
    const f = this.file;
    if (f.syntax === "editions") throw new Error(`${f.name}: editions files are not supported`);
    this.line(0, `// Code generated by scripts/print-validate-proto.ts from the descriptor of ${f.name}`);
    this.line(0, `// in ${PACKAGE_NAME} ${version} (Apache-2.0, Buf Technologies). DO NOT EDIT.`);
    this.line(0, "// Options and comments are dropped: only the wire shape is reproduced, so that buf can");
    this.line(0, "// compile `(buf.validate.*)` options. Generated code imports the package's own descriptor.");
    this.line(0, "");
    this.line(0, `syntax = "${f.syntax === "" ? "proto2" : f.syntax}";`);
    this.line(0, "");
    if (f.package !== "") {
      this.line(0, `package ${f.package};`);
      this.line(0, "");
    }
    if (f.dependency.length > 0) {
      f.dependency.forEach((dep, i) => {
        const kind = f.publicDependency.includes(i) ? "public " : f.weakDependency.includes(i) ? "weak " : "";
        this.line(0, `import ${kind}${quote(dep)};`);
      });
      this.line(0, "");
    }
    const blocks: Array<() => void> = [];
    if (f.extension.length > 0) blocks.push(() => this.extensions(0, f.extension));
    for (const m of f.messageType) blocks.push(() => this.message(0, m));
    for (const e of f.enumType) blocks.push(() => this.enumType(0, e));
    blocks.forEach((block, i) => {
      if (i > 0) this.line(0, "");
      block();
    });
    return this.lines.join("\n") + "\n";
  }
}

const source = new Printer(file_buf_validate_validate.proto).print(packageVersion());
if (process.argv[2] === "-") {
  process.stdout.write(source);
} else {
  mkdirSync(dirname(OUT_FILE), { recursive: true });
  writeFileSync(OUT_FILE, source);
}
