import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkServerUrl, configPath, loadConfig, resolveServer, saveConfig } from "./config.ts";

const dir = mkdtempSync(join(tmpdir(), "skiffctl-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("config file", () => {
  it("lives at $SKIFF_CONFIG, else under the home directory", () => {
    expect(configPath({ SKIFF_CONFIG: "/x/c.yaml" })).toBe("/x/c.yaml");
    expect(configPath({})).toMatch(/\.skiff[/\\]config\.yaml$/);
  });

  it("is written private and read back", async () => {
    const path = join(dir, "sub", "config.yaml");
    expect(await loadConfig(path)).toEqual({});
    await saveConfig(path, { server: "http://10.0.0.1:6443" });
    expect(await loadConfig(path)).toEqual({ server: "http://10.0.0.1:6443" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("rejects a broken file clearly", async () => {
    const path = join(dir, "bad.yaml");
    writeFileSync(path, "server: [1, 2]\n");
    await expect(loadConfig(path)).rejects.toThrow(`config file ${path}: server must be a string`);
  });

  it("resolves the server: flag, then env, then file, then default", async () => {
    const path = join(dir, "resolve.yaml");
    await saveConfig(path, { server: "http://file:1" });
    const env = { SKIFF_CONFIG: path, SKIFF_SERVER: "http://env:1" };
    expect(await resolveServer("http://flag:1/", env)).toEqual({ server: "http://flag:1", source: "flag" });
    expect(await resolveServer(undefined, env)).toEqual({ server: "http://env:1", source: "env" });
    expect(await resolveServer(undefined, { SKIFF_CONFIG: path })).toEqual({ server: "http://file:1", source: "config" });
    expect(await resolveServer(undefined, { SKIFF_CONFIG: join(dir, "none.yaml") })).toEqual({ server: "https://127.0.0.1:6443", source: "default" });
  });

  it("checks URLs", () => {
    expect(() => checkServerUrl("localhost:6443")).toThrow(/must start with http:\/\/ or https:\/\//);
    expect(() => checkServerUrl("not a url")).toThrow(/invalid server URL/);
  });
});
