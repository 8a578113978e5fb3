import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, saveConfig } from "./config.ts";
import { resolveConnection } from "./connection.ts";

const dir = mkdtempSync(join(tmpdir(), "skiffctl-conn-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, "pki"));
for (const f of ["ca.crt", "admin.crt", "admin.key", "other-ca.crt"]) writeFileSync(join(dir, "pki", f), `PEM of ${f}`);
const path = join(dir, "config.yaml");

describe("resolveConnection", () => {
  it("takes server, CA and client certificate from the current context, files relative to the config file", async () => {
    await saveConfig(path, {
      clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443", "certificate-authority": "pki/ca.crt" } }],
      users: [{ name: "admin", user: { "client-certificate": "pki/admin.crt", "client-key": "pki/admin.key" } }, { name: "ci", user: { token: "t0k" } }],
      contexts: [{ name: "admin@c", context: { cluster: "c", user: "admin" } }, { name: "ci@c", context: { cluster: "c", user: "ci" } }],
      "current-context": "admin@c",
    });
    const { rememberServers, ...c } = await resolveConnection({}, { SKIFF_CONFIG: path });
    expect(rememberServers).toBeTypeOf("function");
    expect(c).toEqual({ server: "https://10.0.0.1:6443", servers: ["https://10.0.0.1:6443"], caFile: join(dir, "pki/ca.crt"), credentials: { ca: "PEM of ca.crt", cert: "PEM of admin.crt", key: "PEM of admin.key" } });
    expect((await resolveConnection({ context: "ci@c" }, { SKIFF_CONFIG: path })).credentials).toEqual({ ca: "PEM of ca.crt", token: "t0k" });
  });

  it("lets flags win: server, CA, a token instead of the context's certificate, impersonation", async () => {
    const c = await resolveConnection(
      { server: "https://127.0.0.1:7443", "certificate-authority": join(dir, "pki/other-ca.crt"), token: "flag-token", as: "jane", "as-group": "devs, ops" },
      { SKIFF_CONFIG: path },
    );
    expect(c.server).toBe("https://127.0.0.1:7443");
    expect(c.credentials).toEqual({ ca: "PEM of other-ca.crt", token: "flag-token", impersonateUser: "jane", impersonateGroups: ["devs", "ops"] });
  });

  it("takes several servers, comma-separated, each checked", async () => {
    const c = await resolveConnection({ server: "https://10.0.0.1:6443, https://10.0.0.2:6443" }, { SKIFF_CONFIG: path });
    expect(c.servers).toEqual(["https://10.0.0.1:6443", "https://10.0.0.2:6443"]);
    expect(c.server).toBe("https://10.0.0.1:6443");
    await expect(resolveConnection({ server: "https://10.0.0.1:6443,http://10.0.0.2:6443" }, { SKIFF_CONFIG: path })).rejects.toThrow("use https:// in http://10.0.0.2:6443");
    await expect(resolveConnection({ server: "https://10.0.0.1:6443,10.0.0.2" }, { SKIFF_CONFIG: path })).rejects.toThrow(/invalid server URL "10.0.0.2"/);
  });

  it("keeps the apiservers the cluster lists in the context's cluster entry and uses them next time, after the configured one", async () => {
    const own = join(dir, "known.yaml");
    await saveConfig(own, {
      clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443", "certificate-authority": "pki/ca.crt" } }, { name: "other", cluster: { server: "https://10.9.9.9:6443" } }],
      users: [{ name: "ci", user: { token: "t0k" } }],
      contexts: [{ name: "ci@c", context: { cluster: "c", user: "ci" } }],
      "current-context": "ci@c",
    });
    const first = await resolveConnection({}, { SKIFF_CONFIG: own });
    expect(first.servers).toEqual(["https://10.0.0.1:6443"]);
    await first.rememberServers!(["https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"]);
    const next = await resolveConnection({}, { SKIFF_CONFIG: own });
    expect(next.servers).toEqual(["https://10.0.0.1:6443", "https://10.0.0.2:6443", "https://10.0.0.3:6443"]);
    const cfg = await loadConfig(own);
    expect(cfg.clusters?.map((c) => c.cluster["known-servers"])).toEqual(["https://10.0.0.2:6443,https://10.0.0.3:6443", undefined]);
    // A server that left the Endpoints leaves the list.
    await next.rememberServers!(["https://10.0.0.1:6443", "https://10.0.0.3:6443"]);
    expect((await resolveConnection({}, { SKIFF_CONFIG: own })).servers).toEqual(["https://10.0.0.1:6443", "https://10.0.0.3:6443"]);
    // Servers given by flag or environment belong to no config entry: nothing is kept, the kept ones are not used.
    const flagged = await resolveConnection({ server: "https://10.0.0.7:6443" }, { SKIFF_CONFIG: own });
    expect(flagged.rememberServers).toBeUndefined();
    expect(flagged.servers).toEqual(["https://10.0.0.7:6443"]);
    expect((await resolveConnection({}, { SKIFF_CONFIG: own, SKIFF_SERVER: "https://10.0.0.8:6443" })).rememberServers).toBeUndefined();
  });

  it("says what is missing or wrong in one sentence", async () => {
    const none = join(dir, "none.yaml");
    await expect(resolveConnection({}, { SKIFF_CONFIG: none })).rejects.toThrow(/^no CA to check https:\/\/127\.0\.0\.1:6443's certificate against: pass --certificate-authority/);
    await expect(resolveConnection({ server: "http://127.0.0.1:6443" }, { SKIFF_CONFIG: path })).rejects.toThrow("the apiserver only speaks TLS: use https://");
    await expect(resolveConnection({ context: "nope" }, { SKIFF_CONFIG: path })).rejects.toThrow(/^no context "nope" in .*; contexts: admin@c, ci@c$/);
    await expect(resolveConnection({ "client-certificate": join(dir, "pki/admin.crt"), "client-key": "" , context: "ci@c" }, { SKIFF_CONFIG: path })).rejects.toThrow("needs its key");
    await expect(resolveConnection({ "certificate-authority": join(dir, "missing.crt") }, { SKIFF_CONFIG: path })).rejects.toThrow(/cannot read the CA file .*missing\.crt: ENOENT/);
  });
});
