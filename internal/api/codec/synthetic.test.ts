// The rules no message type in gen/ exercises, on a type built at run time: float and double fields
// (-0.0, NaN, infinities, packed and unpacked lists, explicit presence) and a recursive type (the
// recursion limit on real input, not only a direct call).
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FileDescriptorProtoSchema, file_google_protobuf_wrappers } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { arbitraryMessage, createRandom } from "./arbitrary.ts";
import { codecStats, decodeMessage, encodeMessage } from "./index.ts";
import { isCompilable } from "./support.ts";

const file = create(FileDescriptorProtoSchema, {
  name: "codec_synthetic.proto",
  package: "codec.test",
  syntax: "proto3",
  messageType: [
    {
      name: "Floats",
      field: [
        { name: "d", number: 1, type: Type.DOUBLE, label: Label.OPTIONAL, jsonName: "d" },
        { name: "f", number: 2, type: Type.FLOAT, label: Label.OPTIONAL, jsonName: "f" },
        { name: "ds", number: 3, type: Type.DOUBLE, label: Label.REPEATED, jsonName: "ds" },
        { name: "fs", number: 4, type: Type.FLOAT, label: Label.REPEATED, jsonName: "fs" },
        { name: "od", number: 5, type: Type.DOUBLE, label: Label.OPTIONAL, jsonName: "od", proto3Optional: true, oneofIndex: 0 },
        { name: "next", number: 6, type: Type.MESSAGE, typeName: ".codec.test.Floats", label: Label.OPTIONAL, jsonName: "next" },
      ],
      oneofDecl: [{ name: "_od" }],
    },
  ],
});
const Floats: DescMessage = createFileRegistry(file, () => undefined).getMessage("codec.test.Floats")!;

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const SPECIAL = [-0, 0, NaN, Infinity, -Infinity, Number.MIN_VALUE, -1.5, 3.4028234663852886e38, 1e-46];

describe("the compiled codec on float and double fields (a type built at run time)", () => {
  it("is compiled, not handed to protobuf-es", () => {
    expect(isCompilable(Floats)).toBe(true);
  });

  it("writes toBinary's bytes and reads fromBinary's values for -0.0, NaN, infinities and values a float cannot hold", () => {
    const before = { encoded: codecStats.encoded, decoded: codecStats.decoded };
    for (const v of SPECIAL) {
      for (const msg of [
        create(Floats, { d: v }),
        create(Floats, { f: v }),
        create(Floats, { ds: [v, 1, v] }),
        create(Floats, { fs: [v, v] }),
        create(Floats, { od: v }),
      ]) {
        const want = toBinary(Floats, msg);
        expect(hex(encodeMessage(Floats, msg)), `${v}`).toBe(hex(want));
        // toEqual tells -0 from 0 and NaN from everything but NaN.
        expect(decodeMessage(Floats, want)).toEqual(fromBinary(Floats, want));
      }
    }
    expect(codecStats.encoded - before.encoded).toBe(SPECIAL.length * 5);
    expect(codecStats.decoded - before.decoded).toBe(SPECIAL.length * 5);
  });

  it("reads unpacked lists of doubles and floats as protobuf-es does", () => {
    // field 3 (double) as wire type 1 twice, field 4 (float) as wire type 5 once
    const d = Buffer.alloc(8);
    d.writeDoubleLE(-0);
    const f = Buffer.alloc(4);
    f.writeFloatLE(2.5);
    const bytes = Buffer.concat([Buffer.of(0x19), d, Buffer.of(0x19), d, Buffer.of(0x25), f]);
    const got = decodeMessage(Floats, bytes) as any;
    expect(got).toEqual(fromBinary(Floats, bytes));
    expect(Object.is(got.ds[0], -0)).toBe(true);
    expect(got.fs).toEqual([2.5]);
  });

  it("agrees with protobuf-es on random messages", () => {
    const rnd = createRandom(21);
    for (let i = 0; i < 200; i++) {
      const msg = arbitraryMessage(Floats, rnd);
      const want = toBinary(Floats, msg);
      expect(hex(encodeMessage(Floats, msg))).toBe(hex(want));
      expect(decodeMessage(Floats, want)).toEqual(fromBinary(Floats, want));
    }
  });

  it("decodes nesting up to protobuf-es' recursion limit itself, and beyond it fails as protobuf-es does", () => {
    const nested = (depth: number) => {
      let m = create(Floats, { d: 1 });
      for (let i = 1; i < depth; i++) m = create(Floats, { next: m });
      return toBinary(Floats, m);
    };
    const ok = nested(100);
    const fallbacks = codecStats.decodeFallbacks;
    expect(decodeMessage(Floats, ok)).toEqual(fromBinary(Floats, ok));
    expect(codecStats.decodeFallbacks).toBe(fallbacks);
    const deep = nested(150);
    expect(() => fromBinary(Floats, deep)).toThrow();
    expect(() => decodeMessage(Floats, deep)).toThrow(String((() => { try { fromBinary(Floats, deep); } catch (e) { return (e as Error).message; } })()));
  });
});

// A recursive pair where only one side holds a type the compiled code does not handle (a
// wrapper, which protobuf-es unboxes to a string): neither side may be compiled, whichever is
// asked first.
const cycleFile = create(FileDescriptorProtoSchema, {
  name: "codec_cycle.proto",
  package: "codec.cycle",
  syntax: "proto3",
  dependency: ["google/protobuf/wrappers.proto"],
  messageType: [
    {
      name: "Tree",
      field: [
        { name: "child", number: 1, type: Type.MESSAGE, typeName: ".codec.cycle.Branch", label: Label.OPTIONAL, jsonName: "child" },
        { name: "note", number: 2, type: Type.MESSAGE, typeName: ".google.protobuf.StringValue", label: Label.OPTIONAL, jsonName: "note" },
      ],
    },
    { name: "Branch", field: [{ name: "tree", number: 1, type: Type.MESSAGE, typeName: ".codec.cycle.Tree", label: Label.OPTIONAL, jsonName: "tree" }] },
  ],
});
const cycle = createFileRegistry(cycleFile, (name) => (name === "google/protobuf/wrappers.proto" ? file_google_protobuf_wrappers : undefined));
const Tree = cycle.getMessage("codec.cycle.Tree")!;
const Branch = cycle.getMessage("codec.cycle.Branch")!;

describe("the compiled codec on a recursive pair of types, one of them not compilable", () => {
  it("decodes a wrapper inside the cycle as protobuf-es does (unboxed), after the other type was asked first", () => {
    expect(isCompilable(Tree)).toBe(false); // asked first: Branch is reached through Tree's cycle
    const bytes = toBinary(Branch, create(Branch, { tree: { note: "kept as a string" } }));
    const got = decodeMessage(Branch, bytes) as any;
    expect(got.tree.note).toBe("kept as a string");
    expect(got).toEqual(fromBinary(Branch, bytes));
    expect(isCompilable(Branch)).toBe(false);
  });
});
