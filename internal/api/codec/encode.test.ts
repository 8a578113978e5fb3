import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { allMessageTypes } from "./all-types.ts";
import { arbitraryMessage, createRandom } from "./arbitrary.ts";
import { codecStats, encodeMessage } from "./index.ts";

const { all, skiff } = await allMessageTypes();
const byName = (n: string) => all.find((d) => d.typeName === n)!;

/** protobuf-es' bytes and ours for the same message: equal, or the same error. */
function expectSameEncode(desc: DescMessage, msg: any): void {
  let want: Uint8Array | undefined, wantErr: unknown, got: Uint8Array | undefined, gotErr: unknown;
  try { want = toBinary(desc, msg); } catch (e) { wantErr = e; }
  try { got = encodeMessage(desc, msg); } catch (e) { gotErr = e; }
  if (wantErr !== undefined) {
    expect(String(gotErr), desc.typeName).toBe(String(wantErr));
    return;
  }
  expect(gotErr).toBeUndefined();
  expect(Object.getPrototypeOf(got), "a plain Uint8Array, like toBinary's").toBe(Uint8Array.prototype);
  expect(Buffer.from(got!).toString("hex"), desc.typeName).toBe(Buffer.from(want!).toString("hex"));
}

describe("encodeMessage", () => {
  it("writes toBinary's bytes for random messages of every type, encoding them itself", () => {
    const rnd = createRandom(11);
    const before = codecStats.encoded;
    for (const desc of all) {
      for (let i = 0; i < 8; i++) expectSameEncode(desc, arbitraryMessage(desc, rnd));
    }
    expect(codecStats.encoded - before).toBeGreaterThan(skiff.length * 8 - 1);
  });

  it("writes a decoded message back to the same bytes, and decoded unknown fields through protobuf-es", () => {
    const pod = byName("skiff.v1alpha1.Pod");
    const bytes = toBinary(pod, arbitraryMessage(pod, createRandom(12)));
    expectSameEncode(pod, fromBinary(pod, bytes));
    const withUnknown = fromBinary(pod, Buffer.concat([bytes, Uint8Array.of(0xb8, 0x3e, 0x96, 0x01)]));
    const before = codecStats.encodeFallbacks;
    expectSameEncode(pod, withUnknown);
    expect(codecStats.encodeFallbacks).toBe(before + 1);
    expect(Buffer.from(encodeMessage(pod, withUnknown)).subarray(-4)).toEqual(Buffer.from([0xb8, 0x3e, 0x96, 0x01]));
  });

  it("keeps protobuf-es' presence rules: -0.0 and NaN written, zero values omitted, optional zero written", () => {
    const rnd = createRandom(13);
    for (const desc of all) {
      const msg: any = create(desc);
      for (const f of desc.fields) {
        if (f.oneof || f.fieldKind !== "scalar") continue;
        if (f.scalar === 1 || f.scalar === 2) msg[f.localName] = rnd() < 0.5 ? -0 : Number.NaN; // double, float
        else if (f.presence !== 2) msg[f.localName] = f.scalar === 9 ? "" : f.scalar === 8 ? false : f.scalar === 12 ? new Uint8Array(0) : f.longAsString ? "0" : typeof msg[f.localName] === "bigint" || [3, 4, 6, 16, 18].includes(f.scalar) ? 0n : 0;
      }
      expectSameEncode(desc, msg);
    }
  });

  it("gives protobuf-es the values it coerces or refuses, with its result or error", () => {
    const meta = byName("skiff.v1alpha1.ObjectMeta");
    const base = create(meta, { name: "a" }) as any;
    const cases: Array<(m: any) => void> = [
      (m) => { m.name = 42; },                 // a number in a string field: protobuf-es writes "42"
      (m) => { m.generation = 2 ** 70; },      // out of int64 range: protobuf-es throws
      (m) => { m.generation = "17"; },         // a string in an int64 field: protobuf-es parses it
      (m) => { m.labels = { a: 1 }; },         // a number as a map value
      (m) => { m.$typeName = "skiff.v1alpha1.Pod"; }, // another type's message: ForeignFieldError
    ];
    for (const mutate of cases) {
      const m = { ...base, labels: { ...base.labels } };
      mutate(m);
      expectSameEncode(meta, m);
    }
    const container = byName("skiff.v1alpha1.ContainerPort");
    for (const bad of [2 ** 31, -(2 ** 31) - 1, 1.5, "80"]) {
      const m: any = create(container);
      const f = container.fields.find((x) => x.fieldKind === "scalar" && x.scalar === 5)!; // an int32 field
      m[f.localName] = bad;
      expectSameEncode(container, m);
    }
  });
});
