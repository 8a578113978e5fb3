// The CLI end to end in-process with fake stdio, for everything that needs no apiserver (or a
// missing one). test/cli/skiffctl.test.ts runs the real binary against a real apiserver.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testPki } from "../pki/testing.ts";
import { parseCascade, parseGracePeriod } from "./commands/delete.ts";
import { flagValues, rejectUnknownFlags } from "./commands/flags.ts";
import { parseOutput, parseTargets } from "./commands/get.ts";
import { runSkiffctl } from "./main.ts";

const dir = mkdtempSync(join(tmpdir(), "skiffctl-main-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[], env: Record<string, string> = {}, stdin = "") {
  let out = "";
  let err = "";
  const code = await runSkiffctl(args, {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
    readStdin: async () => stdin,
    env: { SKIFF_CONFIG: join(dir, "config.yaml"), ...env },
    signal: new AbortController().signal,
  });
  return { code, out, err };
}

// Nothing listens there; the config gives the CA (the server's certificate is never reached).
const DOWN = { SKIFF_SERVER: "https://127.0.0.1:1", SKIFF_CONFIG: join(dir, "down.yaml") };
beforeAll(async () => {
  const ca = join(dir, "ca.crt");
  writeFileSync(ca, (await testPki()).ca.cert);
  writeFileSync(DOWN.SKIFF_CONFIG, JSON.stringify({ clusters: [{ name: "c", cluster: { "certificate-authority": ca } }], contexts: [{ name: "x", context: { cluster: "c" } }], "current-context": "x" }));
});

describe("skiffctl without an apiserver", () => {
  it("prints help and its version", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/USAGE skiffctl .*apply\|create\|get\|describe\|delete\|edit\|logs\|scale\|set\|rollout\|cordon\|uncordon\|drain\|config/);
    expect((await run(["rollout", "--help"])).out).toMatch(/USAGE skiffctl rollout status\|history\|undo\|pause\|resume/);
    expect((await run(["rollout", "status", "--help"])).out).toMatch(/--timeout=<DURATION>/);
    expect((await run(["set", "image", "--help"])).out).toMatch(/USAGE skiffctl set image/);
    expect((await run(["drain", "--help"])).out).toMatch(/--delete-emptydir-data/);
    expect(help.out).toBe(stripVTControlCharacters(help.out));
    expect((await run(["get", "--help"])).out).toMatch(/--field-selector/);
    expect((await run(["--version"])).out).toBe("skiffctl 0.1.0\n");
  });

  it("fails with one clear line and exit code 1", async () => {
    const cases: [string[], RegExp][] = [
      [["frob"], /^Error: unknown command "frob"/],
      [["get", "gizmos"], /^Error: unknown resource type "gizmos"; known types: namespaces \(ns\), nodes \(no\), pods \(po\)/],
      [["get", "pods", "-o", "table"], /^Error: unknown output format "table"/],
      [["apply"], /^Error: apply needs -f FILE/],
      [["apply", "-f", join(dir, "missing.yaml")], /^Error: .*missing\.yaml: no such file or directory\n$/],
      [["delete", "pods"], /^Error: which pods\? give names, -l SELECTOR, or --all/],
      [["delete", "pod", "x", "--cascade", "sideways"], /^Error: --cascade must be background, foreground or orphan/],
      [["get", "pods"], /^Error: cannot reach the apiserver at https:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/],
      [["config", "set-server", "localhost"], /^Error: invalid server URL "localhost"/],
      [["get", "pods", "--namspace", "x"], /^Error: unknown flag --namspace\n/],
      [["get", "pods", "-Awz"], /^Error: unknown flag -z \(in -Awz\)/],
    ];
    for (const [args, want] of cases) {
      const r = await run(args, DOWN);
      expect(r.err, args.join(" ")).toMatch(want);
      expect(r.err.trim().split("\n").every((l) => l.startsWith("Error: ") || l.startsWith("Run "))).toBe(true);
      expect(r.code).toBe(1);
    }
  });

  it("rejects a bad manifest before contacting the apiserver", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i, resources: {limits: {cpu: 1x}}}]\n");
    const r = await run(["apply", "-f", file], DOWN);
    expect(r.err).toBe(`Error: ${file}: document 1 (Pod p): spec.containers[0].resources.limits.cpu: invalid quantity "1x": unknown suffix "x" (use one of m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3)\n`);
    const stdin = await run(["apply", "-f", "-"], DOWN, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  bogus: 1\n");
    expect(stdin.err).toBe("Error: <stdin>: document 1 (Pod p): unknown field metadata.bogus\n");
  });

  it("keeps its config in $SKIFF_CONFIG", async () => {
    expect((await run(["config", "set-server", "http://10.1.2.3:6443"])).code).toBe(0);
    expect((await run(["config", "current"])).out).toBe("http://10.1.2.3:6443\n");
    expect((await run(["config", "view"])).out).toMatch(/server: http:\/\/10\.1\.2\.3:6443/);
    expect((await run(["--server", "http://other:1", "config", "current"])).out).toBe("http://other:1\n");
    expect((await run(["config", "current"], { SKIFF_SERVER: "http://env:2" })).out).toBe("http://env:2\n");
  });
});

describe("argument parsing", () => {
  it("reads kinds, names and KIND/NAME", () => {
    expect(parseTargets(["po,svc", "web"]).map((t) => [t.kind.kind, t.names])).toEqual([["Pod", ["web"]], ["Service", ["web"]]]);
    expect(parseTargets(["deploy/web", "svc/web", "deploy/db"]).map((t) => [t.kind.kind, t.names])).toEqual([["Deployment", ["web", "db"]], ["Service", ["web"]]]);
    expect(parseTargets(["all"]).map((t) => t.kind.kind)).toEqual(["Pod", "Service", "Deployment", "ReplicaSet"]);
    expect(() => parseTargets(["deploy/web", "db"])).toThrow(/use KIND\/NAME for every one/);
    expect(parseOutput("wide")).toEqual({ table: true, wide: true });
    const defs = { output: { type: "string", alias: "o" }, watch: { type: "boolean", alias: "w" }, all: { type: "boolean", alias: "A" } };
    expect(() => rejectUnknownFlags(["pods", "-owide", "-Aw", "--output=json", "-o", "-x", "--no-watch", "--", "--anything"], defs)).not.toThrow();
  });

  it("reads repeated -f and delete options", () => {
    expect(flagValues(["-f", "a.yaml", "--filename=b", "-fc.yaml", "--filename", "d", "-n", "x"], "filename", "f")).toEqual(["a.yaml", "b", "c.yaml", "d"]);
    expect(parseCascade("Foreground")).toBe("Foreground");
    expect(parseCascade("false")).toBe("Orphan");
    expect(parseGracePeriod("0")).toBe(0n);
    expect(parseGracePeriod("-1")).toBeUndefined();
    expect(() => parseGracePeriod("soon")).toThrow(/whole number/);
  });
});
