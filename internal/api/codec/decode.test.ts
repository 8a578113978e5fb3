import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { allMessageTypes } from "./all-types.ts";
import { arbitraryMessage, createRandom, firstDifference } from "./arbitrary.ts";
import { codecStats, decodeMessage } from "./index.ts";
import { isCompilable } from "./support.ts";
import { compiledDecoder, GIVE_UP } from "./decode.ts";
import { BinaryReader } from "@bufbuild/protobuf/wire";

const { all, skiff } = await allMessageTypes();

/** protobuf-es' outcome and ours for the same bytes: both throw, or equal messages. */
function expectSameDecode(desc: DescMessage, bytes: Uint8Array): void {
  let want: unknown, wantErr: unknown, got: unknown, gotErr: unknown;
  try { want = fromBinary(desc, bytes); } catch (e) { wantErr = e; }
  try { got = decodeMessage(desc, bytes); } catch (e) { gotErr = e; }
  if (wantErr !== undefined) {
    expect(gotErr, `${desc.typeName}: protobuf-es threw ${String(wantErr)}`).toBeDefined();
    expect(String(gotErr)).toBe(String(wantErr));
    return;
  }
  expect(gotErr).toBeUndefined();
  expect(firstDifference(got, want), desc.typeName).toBeUndefined();
  expect(isDeepStrictEqual(got, want)).toBe(true);
}

describe("decodeMessage", () => {
  it("finds Skiff's kinds, requests, responses and watch events", () => {
    const names = skiff.map((d) => d.typeName);
    for (const n of ["skiff.v1alpha1.Pod", "skiff.v1alpha1.Node", "skiff.v1alpha1.Deployment", "skiff.v1alpha1.PodServiceWatchResponse", "skiff.v1alpha1.PodServiceCreateRequest"]) {
      expect(names).toContain(n);
    }
    expect(skiff.length).toBeGreaterThan(100);
    expect(skiff.every(isCompilable)).toBe(true); // all of Skiff's own types take the compiled path
  });

  it("gives protobuf-es' message for random messages of every type, decoding them itself", () => {
    const rnd = createRandom(1);
    const before = { ...codecStats };
    for (const desc of all) {
      for (let i = 0; i < 8; i++) expectSameDecode(desc, toBinary(desc, arbitraryMessage(desc, rnd)));
    }
    expect(codecStats.decoded - before.decoded).toBeGreaterThan(skiff.length * 8 - 1);
  });

  it("merges like protobuf-es when a message's encodings are concatenated (messages merge, lists append, oneof and map keys: last wins)", () => {
    const rnd = createRandom(2);
    for (const desc of all) {
      for (let i = 0; i < 4; i++) {
        const a = toBinary(desc, arbitraryMessage(desc, rnd));
        const b = toBinary(desc, arbitraryMessage(desc, rnd));
        expectSameDecode(desc, Buffer.concat([a, b]));
      }
    }
  });

  it("throws where protobuf-es throws, and otherwise agrees, on truncated and mutated bytes", () => {
    const rnd = createRandom(3);
    for (const desc of skiff) {
      const bytes = toBinary(desc, arbitraryMessage(desc, rnd));
      if (bytes.length === 0) continue;
      for (let i = 0; i < 6; i++) {
        const mutated = Uint8Array.from(bytes);
        const kind = i % 3;
        if (kind === 0) expectSameDecode(desc, mutated.subarray(0, Math.floor(rnd() * mutated.length)));
        else if (kind === 1) {
          for (let j = 0; j < 3; j++) mutated[Math.floor(rnd() * mutated.length)] = Math.floor(rnd() * 256);
          expectSameDecode(desc, mutated);
        } else {
          expectSameDecode(desc, Uint8Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)));
        }
      }
    }
  });

  it("keeps unknown fields and odd encodings exactly as protobuf-es does (falls back to it)", () => {
    const pod = skiff.find((d) => d.typeName === "skiff.v1alpha1.Pod")!;
    const bytes = toBinary(pod, arbitraryMessage(pod, createRandom(4)));
    const before = codecStats.decodeFallbacks;
    // field 999, varint 150: unknown to Pod
    const withUnknown = Buffer.concat([bytes, Uint8Array.of(0xb8, 0x3e, 0x96, 0x01)]);
    expectSameDecode(pod, withUnknown);
    expect((decodeMessage(pod, withUnknown) as any).$unknown).toHaveLength(1);
    // metadata (field 1) sent with a non-canonical, over-long tag and length
    expectSameDecode(pod, Uint8Array.of(0x8a, 0x80, 0x00, 0x82, 0x00, 0x0a, 0x00));
    expect(codecStats.decodeFallbacks).toBeGreaterThan(before);
  });

  it("reads repeated numbers packed and unpacked", () => {
    const sc = all.find((d) => d.typeName === "skiff.v1alpha1.PodSecurityContext")!;
    const field = sc.fields.find((f) => f.localName === "supplementalGroups")!;
    const tagUnpacked = (field.number << 3) | 0;
    const tagPacked = (field.number << 3) | 2;
    const unpacked = Uint8Array.of(tagUnpacked, 5, tagUnpacked, 0x96, 0x01);
    const packed = Uint8Array.of(tagPacked, 3, 7, 0x96, 0x01);
    expect((decodeMessage(sc, Buffer.concat([unpacked, packed])) as any).supplementalGroups).toEqual([5n, 150n, 7n, 150n]);
    expectSameDecode(sc, Buffer.concat([unpacked, packed]));
  });

  it("gives up (to protobuf-es, whose limit is 100) past 100 nested messages", () => {
    const pod = skiff.find((d) => d.typeName === "skiff.v1alpha1.Pod")!;
    const bytes = toBinary(pod, arbitraryMessage(pod, createRandom(5)));
    const decode = (depth: number) => compiledDecoder(pod).decode(new BinaryReader(bytes), Buffer.from(bytes), bytes.length, depth, undefined);
    expect(firstDifference(decode(1), fromBinary(pod, bytes))).toBeUndefined();
    expect(() => decode(99)).toThrow(GIVE_UP); // the Pod at 99, its metadata's fields at 101
  });
});

