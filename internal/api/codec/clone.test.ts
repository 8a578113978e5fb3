import { clone, create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { allMessageTypes } from "./all-types.ts";
import { arbitraryMessage, createRandom, firstDifference } from "./arbitrary.ts";
import { cloneMessage, codecStats, decodeMessage } from "./index.ts";

const { all } = await allMessageTypes();
const byName = (n: string) => all.find((d) => d.typeName === n)!;

/**
 * Every object (message, array, map, Uint8Array) reachable from a value; the entries of an
 * `$unknown` array are left out: protobuf-es' clone copies that array but shares its entries.
 */
function objectsIn(v: unknown, out = new Set<object>()): Set<object> {
  if (typeof v !== "object" || v === null || out.has(v)) return out;
  out.add(v);
  if (v instanceof Uint8Array) return out;
  for (const [k, x] of Object.entries(v)) {
    if (k === "$unknown") out.add(x);
    else objectsIn(x, out);
  }
  return out;
}

function expectSameClone(desc: DescMessage, msg: any): void {
  let want: unknown, wantErr: unknown, got: unknown, gotErr: unknown;
  try { want = clone(desc, msg); } catch (e) { wantErr = e; }
  try { got = cloneMessage(desc, msg); } catch (e) { gotErr = e; }
  if (wantErr !== undefined) {
    expect(String(gotErr), desc.typeName).toBe(String(wantErr));
    return;
  }
  expect(gotErr).toBeUndefined();
  expect(firstDifference(got, want), desc.typeName).toBeUndefined();
  expect(isDeepStrictEqual(got, want)).toBe(true);
  const mine = objectsIn(msg);
  const shared = [...objectsIn(got)].filter((o) => mine.has(o) && !(o instanceof Uint8Array && o.byteLength === 0));
  expect(shared, `${desc.typeName}: the clone shares objects with the original`).toEqual([]);
}

describe("cloneMessage", () => {
  it("copies random messages of every type like protobuf-es clone, sharing no mutable object", () => {
    const rnd = createRandom(21);
    const before = codecStats.cloned;
    for (const desc of all) {
      for (let i = 0; i < 8; i++) expectSameClone(desc, arbitraryMessage(desc, rnd));
    }
    // lone surrogates (some random strings) go to protobuf-es, which refuses them
    expect(codecStats.cloned - before).toBeGreaterThan(all.length * 4);
  });

  it("a change to the clone leaves the original as it was", () => {
    const pod = byName("skiff.v1alpha1.Pod");
    const original: any = create(pod, { metadata: { name: "a", labels: { app: "web" } }, spec: { containers: [{ name: "c", image: "i", args: ["x"] }] } } as any);
    const copy: any = cloneMessage(pod, original);
    copy.metadata.labels.app = "db";
    copy.spec.containers[0].args.push("y");
    copy.spec.containers[0].name = "d";
    expect(original.metadata.labels.app).toBe("web");
    expect(original.spec.containers[0].args).toEqual(["x"]);
    expect(original.spec.containers[0].name).toBe("c");
  });

  it("copies the bytes of a message decoded from a Buffer (the apiserver's requests and etcd values), not a view of them", () => {
    const secret = byName("skiff.v1alpha1.Secret");
    const wire = Buffer.from(toBinary(secret, create(secret, { metadata: { name: "s" }, data: { token: Buffer.from("secret-1") } } as any)));
    const stored: any = decodeMessage(secret, wire);
    const copy: any = cloneMessage(secret, stored);
    copy.data.token[7] = "2".charCodeAt(0); // Buffer.prototype.slice is a view, not a copy
    expect(Buffer.from(stored.data.token).toString()).toBe("secret-1");
    expect(wire.includes("secret-1")).toBe(true);
    expect(Buffer.from(copy.data.token).toString()).toBe("secret-2");
  });

  it("gives protobuf-es the values its reflection converts or refuses", () => {
    const meta = byName("skiff.v1alpha1.ObjectMeta");
    const base = create(meta, { name: "a" }) as any;
    const cases: Array<(m: any) => void> = [
      (m) => { m.name = 42; },
      (m) => { m.generation = 2n ** 70n; },
      (m) => { m.generation = 3; },
      (m) => { m.labels = { a: 1 }; },
      (m) => { m.$unknown = [{ no: 99, wireType: 0, data: Uint8Array.of(1) }]; },
    ];
    for (const mutate of cases) {
      const m = { ...base, labels: { ...base.labels } };
      mutate(m);
      expectSameClone(meta, m);
    }
  });
});
