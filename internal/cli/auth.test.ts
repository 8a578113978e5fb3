// skiffctl auth can-i / whoami against the apiserver's real request pipeline: TLS client
// certificates, impersonation (--as), RBAC on its watch caches.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAuthTestApi, type AuthTestApi } from "../auth/testing.ts";
import { testPki } from "../pki/testing.ts";
import { parseReviewResource } from "./commands/auth.ts";
import { runSkiffctl } from "./main.ts";

let api: AuthTestApi;
const dir = mkdtempSync(join(tmpdir(), "skiffctl-auth-"));
beforeAll(async () => {
  api = await startAuthTestApi();
  await api.namespace("team-a");
  await api.put("RoleBinding", {
    metadata: { name: "jane-view", namespace: "team-a" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
    subjects: [{ kind: "User", apiGroup: "rbac.authorization.k8s.io", name: "jane" }],
  });
});
afterAll(async () => {
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

/** skiffctl flags that reach the real apiserver as a certificate for `name` in `groups`. */
async function serveAs(name: string, ...groups: string[]): Promise<string[]> {
  const pki = await testPki();
  const pair = await pki.issueClient(name, groups);
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key, { mode: 0o600 });
  return ["--server", api.server.url, "--certificate-authority", pki.files("ca").cert, "--client-certificate", cert, "--client-key", key];
}

async function skiffctl(connection: string[], args: string[]) {
  let out = "";
  let err = "";
  const env = { SKIFF_CONFIG: join(dir, "config.yaml") };
  const code = await runSkiffctl([...args, ...connection], { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => "", env, signal: new AbortController().signal });
  return { code, out, err };
}

describe("skiffctl auth can-i", () => {
  it("answers yes (exit 0) or no with the reason (exit 1) for the caller", async () => {
    const jane = await serveAs("jane");
    expect(await skiffctl(jane, ["auth", "can-i", "list", "pods", "-n", "team-a"])).toEqual({ code: 0, out: "yes\n", err: "" });
    expect(await skiffctl(jane, ["auth", "can-i", "get", "pods/log", "web", "-n", "team-a"])).toMatchObject({ code: 0, out: "yes\n" });
    expect(await skiffctl(jane, ["auth", "can-i", "create", "deploy", "-n", "team-a"])).toEqual({
      code: 1,
      out: 'no - User "jane" cannot create resource "deployments" in API group "apps" in the namespace "team-a"\n',
      err: "",
    });
    expect(await skiffctl(jane, ["auth", "can-i", "list", "secrets", "-n", "team-a", "-q"])).toEqual({ code: 1, out: "", err: "" });
    expect((await skiffctl(jane, ["auth", "can-i", "list", "pods", "-A"])).code).toBe(1);
    expect((await skiffctl(jane, ["auth", "can-i", "get", "/metrics"])).out).toBe('no - User "jane" cannot get path "/metrics"\n');
  });

  it("checks another user with --as (impersonation) only for a caller allowed to impersonate", async () => {
    const admin = await serveAs("admin", "system:masters");
    expect(await skiffctl(admin, ["auth", "can-i", "list", "pods", "-n", "team-a", "--as", "jane"])).toMatchObject({ code: 0, out: "yes\n" });
    expect(await skiffctl(admin, ["auth", "can-i", "delete", "nodes", "--as", "bob", "--as-group", "system:masters"])).toMatchObject({ code: 0, out: "yes\n" });
    expect((await skiffctl(admin, ["auth", "can-i", "list", "secrets", "-n", "team-a", "--as", "jane"])).code).toBe(1);
    const jane = await serveAs("jane");
    const r = await skiffctl(jane, ["auth", "can-i", "list", "pods", "--as", "admin"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error: .*user "jane" cannot impersonate user "admin"/);
  });

  it("refuses what it cannot ask about, naming what to write", async () => {
    const jane = await serveAs("jane");
    expect(await skiffctl(jane, ["auth", "can-i", "frobnicate", "pods"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: unknown verb "frobnicate": use one of get, list/) });
    expect(await skiffctl(jane, ["auth", "can-i", "get"])).toMatchObject({ code: 1, err: expect.stringMatching(/^Error: say what to check: skiffctl auth can-i VERB RESOURCE/) });
    expect(await skiffctl(jane, ["auth", "can-i", "get", "widgets", "-n", "team-a"])).toEqual({
      code: 1,
      out: 'no - User "jane" cannot get resource "widgets" in API group "" in the namespace "team-a"\n',
      err: 'Warning: the server doesn\'t have a resource type "widgets"\n',
    });
  });

  it("finds resources through the kind registry", () => {
    expect(parseReviewResource("deploy")).toMatchObject({ resource: "deployments", group: "apps", subresource: "" });
    expect(parseReviewResource("leases.coordination.k8s.io")).toMatchObject({ resource: "leases", group: "coordination.k8s.io", unknown: false });
    expect(parseReviewResource("pods/status")).toMatchObject({ resource: "pods", group: "", subresource: "status" });
    expect(parseReviewResource("clusterroles")).toMatchObject({ resource: "clusterroles", group: "rbac.authorization.k8s.io", namespaced: false });
    expect(parseReviewResource("cronjobs.batch")).toMatchObject({ resource: "cronjobs", group: "batch", unknown: true });
  });
});

describe("skiffctl auth whoami", () => {
  it("prints the caller's name and groups", async () => {
    const url = await serveAs("system:node:n1", "system:nodes");
    expect(await skiffctl(url, ["auth", "whoami"])).toEqual({
      code: 0,
      out: "ATTRIBUTE          VALUE\nUsername           system:node:n1\nGroups             [system:nodes system:authenticated]\nAuthenticated by   x509\n",
      err: "",
    });
    expect(JSON.parse((await skiffctl(url, ["auth", "whoami", "-o", "json"])).out)).toEqual({
      username: "system:node:n1",
      uid: "",
      groups: ["system:nodes", "system:authenticated"],
      authenticatedBy: "x509",
    });
  });

  it("says so when the server knows no caller", async () => {
    const pki = await testPki();
    const r = await skiffctl(["--server", api.server.url, "--certificate-authority", pki.files("ca").cert], ["auth", "whoami"]);
    expect(r).toMatchObject({ code: 1, out: "", err: expect.stringMatching(/no credentials/) });
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});
