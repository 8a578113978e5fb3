// skiffctl's credentials against a real apiserver: the one-line errors for a server certificate
// from another CA, no credentials, and a forbidden call; a token and --as from the flags.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaticTokenAuthenticator } from "../../internal/auth/authn/token-file.ts";
import type { Authorizer } from "../../internal/auth/types.ts";
import { runSkiffctl } from "../../internal/cli/main.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { foreignCa } from "../harness/pki.ts";

// jane may not list secrets; only admins may impersonate.
const authorizer: Authorizer = {
  authorize: (a) =>
    a.user.groups.includes("system:masters") || (a.verb !== "impersonate" && a.resource !== "secrets")
      ? { decision: "allow", reason: "" }
      : { decision: "deny", reason: "" },
};

let cp: ControlPlane;
let dir: string;
let caOnly: string;
beforeAll(async () => {
  cp = await startControlPlane({ authorizer, tokenAuthenticators: [createStaticTokenAuthenticator(new Map([["jane-token", { name: "jane", groups: [] }]]))] });
  dir = mkdtempSync(join(tmpdir(), "skiffctl-creds-"));
  // A config that names the cluster and its CA, and no user.
  caOnly = join(dir, "ca-only.yaml");
  writeFileSync(caOnly, JSON.stringify({ clusters: [{ name: "c", cluster: { server: cp.server.url, "certificate-authority": cp.pki.files("ca").cert } }], contexts: [{ name: "x", context: { cluster: "c" } }], "current-context": "x" }));
});
afterAll(async () => {
  await cp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function skiffctl(args: string[], config = caOnly) {
  let out = "";
  let err = "";
  const code = await runSkiffctl(args, { out: (t) => void (out += t), err: (t) => void (err += t), readStdin: async () => "", env: { SKIFF_CONFIG: config }, signal: new AbortController().signal });
  return { code, out, err };
}

describe("skiffctl credentials", () => {
  it("says in one line that the server's certificate is not signed by the given CA", async () => {
    const other = join(dir, "other-ca.crt");
    writeFileSync(other, (await foreignCa()).ca.cert);
    const r = await skiffctl(["get", "pods", "--certificate-authority", other, "--token", "jane-token"]);
    expect(r).toEqual({ code: 1, out: "", err: `Error: the server's certificate is not signed by the CA in ${other} (${cp.server.url}): use the cluster's ca.crt (--certificate-authority)\n` });
  });

  it("says in one line that there are no credentials", async () => {
    const r = await skiffctl(["get", "pods"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error: not authenticated by https:\/\/127\.0\.0\.1:\d+: no credentials: present a client certificate .*\n$/);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("says in one line what is forbidden, and lets the same user do what is allowed", async () => {
    const r = await skiffctl(["get", "secrets", "-n", "team-a", "--token", "jane-token"]);
    expect(r).toEqual({ code: 1, out: "", err: 'Error: secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team-a"\n' });
    expect((await skiffctl(["get", "configmaps", "--token", "jane-token"])).code).toBe(0);
  });

  it("acts as another user with --as when the real one may impersonate, and not otherwise", async () => {
    const admin = ["--client-certificate", cp.pki.files("admin").cert, "--client-key", cp.pki.files("admin").key];
    const asJane = await skiffctl(["get", "secrets", "-n", "team-a", ...admin, "--as", "jane"]);
    expect(asJane.err).toBe('Error: secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team-a"\n');
    const janeAsAdmin = await skiffctl(["get", "secrets", "--token", "jane-token", "--as", "admin", "--as-group", "system:masters"]);
    expect(janeAsAdmin.err).toBe('Error: forbidden: user "jane" cannot impersonate user "admin"\n');
  });
});
