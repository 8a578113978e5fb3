// Node run with --disallow-code-generation-from-strings (a hardening flag an operator may put in
// NODE_OPTIONS) refuses `new Function`: the codec must then be protobuf-es, from the first call on.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const url = (path: string) => new URL(path, import.meta.url).href;

// Each call twice: the first used to throw EvalError, later ones found an empty compiled cell.
const script = `
import { create, toBinary, fromBinary, clone, equals } from "@bufbuild/protobuf";
import { PodSchema } from ${JSON.stringify(url("../../../gen/skiff/v1alpha1/pod_pb.js"))};
import { decodeMessage, encodeMessage, cloneMessage, codecStats } from ${JSON.stringify(url("./index.ts"))};
const pod = create(PodSchema, { metadata: { name: "web-1", labels: { app: "web" } }, spec: { containers: [{ name: "c", image: "busybox" }] } });
const bytes = toBinary(PodSchema, pod);
const out = [];
for (let i = 0; i < 2; i++) {
  const run = (name, f) => { try { out.push(name + ":" + f()); } catch (e) { out.push(name + " threw " + e.name); } };
  run("decode", () => equals(PodSchema, decodeMessage(PodSchema, bytes), fromBinary(PodSchema, bytes)));
  run("encode", () => Buffer.from(encodeMessage(PodSchema, pod)).equals(bytes));
  run("clone", () => equals(PodSchema, cloneMessage(PodSchema, pod), clone(PodSchema, pod)));
}
console.log(JSON.stringify({ out, compiled: codecStats.decoded + codecStats.encoded + codecStats.cloned }));
`;

describe("the codec in a node that refuses code generation from strings", () => {
  it("decodes, encodes and clones with protobuf-es from the first call, with its results", () => {
    const stdout = execFileSync(process.execPath, ["--disallow-code-generation-from-strings", "--input-type=module", "-e", script], {
      cwd: new URL("../../../", import.meta.url),
      encoding: "utf8",
      timeout: 120_000,
    });
    const { out, compiled } = JSON.parse(stdout.trim().split("\n").at(-1)!);
    expect(out).toEqual(["decode:true", "encode:true", "clone:true", "decode:true", "encode:true", "clone:true"]);
    expect(compiled).toBe(0); // the flag really took effect: nothing ran compiled
  });
});
