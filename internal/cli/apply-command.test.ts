// skiffctl apply against an in-process apiserver: documents are applied one by one, as kubectl does.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCliTestApi, type CliTestApi } from "./testing.ts";

let api: CliTestApi;
let dir: string;
beforeAll(async () => {
  api = await startCliTestApi();
  dir = await mkdtemp(join(tmpdir(), "skiff-cli-apply-"));
});
afterAll(async () => {
  await api?.close();
  await rm(dir, { recursive: true, force: true });
});

const cm = (name: string, ns = "") => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}${ns ? `, namespace: ${ns}` : ""}}\ndata: {k: v}\n`;

describe("skiffctl apply, document by document", () => {
  it("applies every good document, reports each bad one with its place, and exits 1", async () => {
    const file = join(dir, "mixed.yaml");
    const pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: 'busybox:1', stdinOnce: true, resizePolicy: []}]\n";
    await writeFile(file, [cm("one"), "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n", pod, cm("two", "other"), cm("three")].join("---\n"));
    const r = await api.run(["apply", "-f", file, "-n", "default"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("configmap/one created\nconfigmap/three created\n");
    expect(r.err.split("\n").filter(Boolean)).toEqual([
      expect.stringMatching(new RegExp(`^Error: ${file}: document 2 \\(Ingress web\\): unknown kind "Ingress" \\(known kinds: `)),
      `Error: ${file}: document 3 (Pod p): 2 problems: unsupported field spec.containers[0].stdinOnce (Skiff does not support it yet); ` +
        "unsupported field spec.containers[0].resizePolicy (Skiff does not support it yet)",
      `Error: ${file}: document 4 (ConfigMap two): the namespace in the file ("other") does not match -n "default"`,
    ]);
    // Applied again: the good ones are unchanged, the bad ones still reported.
    const again = await api.run(["apply", "-f", file, "-n", "default"]);
    expect(again).toMatchObject({ code: 1, out: "configmap/one unchanged\nconfigmap/three unchanged\n" });
    // delete -f with the same file removes what it can name, and reports the rest.
    const del = await api.run(["delete", "-f", file, "-n", "default"]);
    expect(del.code).toBe(1);
    expect(del.out).toBe('configmap "one" deleted\nconfigmap "three" deleted\n');
    const errors = del.err.split("\n").filter(Boolean);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/document 2 \(Ingress web\): unknown kind "Ingress"/);
    expect(errors[1]).toMatch(/document 4 \(ConfigMap two\): the namespace in the file/);
    expect(errors[2]).toBe('Error: pod "p" not found'); // never created: its document was refused
  });

  it("exits 1 without contacting the apiserver when no document can be applied", async () => {
    const file = join(dir, "bad.yaml");
    await writeFile(file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndat: {k: v}\n");
    const r = await api.run(["apply", "-f", file, "--server", "https://127.0.0.1:1"]);
    expect(r).toEqual({ code: 1, out: "", err: `Error: ${file}: document 1 (ConfigMap x): unknown field dat (did you mean data?)\n` });
  });
});
