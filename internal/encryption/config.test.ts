import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kinds } from "../api/registry.ts";
import { addWriteKey, ensureEncryptionConfig, formatEncryptionConfig, readEncryptionConfig, generateEncryptionConfig, parseEncryptionConfig, retireOtherKeys } from "./config.ts";
import { resolveEncryptionConfig } from "./state.ts";

const secret32 = Buffer.alloc(32, 7).toString("base64");
const valid = `
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets, configmaps.]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: ${secret32}
      - identity: {}
`;

describe("EncryptionConfiguration", () => {
  it("parses Kubernetes' format and maps resources onto kinds", () => {
    const cfg = parseEncryptionConfig(valid);
    expect(cfg.resources[0].providers).toHaveLength(2);
    const resolved = resolveEncryptionConfig(cfg, kinds);
    expect(resolved.map((r) => r.prefix)).toEqual(["/registry/secrets/", "/registry/configmaps/"]);
    expect(resolved[0].transformer.writeKey).toBe("aesgcm:key1");
  });

  it("names every problem with its field path", () => {
    const bad = `
apiVersion: v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: "a:b"
              secret: c2hvcnQ=
      - secretbox: {}
`;
    expect(() => parseEncryptionConfig(bad, "enc.yaml")).toThrow(
      /enc\.yaml is invalid: apiVersion: must be apiserver\.config\.k8s\.io\/v1.*providers\[0\]\.aesgcm\.keys\[0\]\.name: .*no ':'.*keys\[0\]\.secret: must be base64 of 16, 24 or 32 random bytes .*got 5 bytes.*providers\[1\]: provider secretbox is not supported/,
    );
  });

  it("refuses unknown resources, wildcards, duplicates, unknown fields and empty provider lists", () => {
    const doc = (resources: string) => `apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n${resources}`;
    expect(() => resolveEncryptionConfig(parseEncryptionConfig(doc("  - resources: [widgets]\n    providers: [{identity: {}}]")), kinds)).toThrow(
      /resources\[0\]\.resources\[0\]: this apiserver has no resource "widgets"/,
    );
    expect(() => parseEncryptionConfig(doc("  - resources: ['*.*']\n    providers: [{identity: {}}]"))).toThrow(/wildcards are not supported/);
    expect(() => parseEncryptionConfig(doc("  - resources: [secrets]\n    providers: [{identity: {}}]\n  - resources: [secrets]\n    providers: [{identity: {}}]"))).toThrow(
      /resources\[1\]\.resources\[0\]: secrets appears in more than one entry/,
    );
    expect(() => parseEncryptionConfig(doc("  - resources: [secrets]\n    providers: []\n    extra: 1"))).toThrow(/resources\[0\]\.extra: unknown field.*must list at least one provider/);
    expect(() => parseEncryptionConfig("not: [valid")).toThrow(/not valid YAML/);
  });

  it("generates a config that parses back: a 32-byte aesgcm key for secrets, then identity", () => {
    const text = formatEncryptionConfig(generateEncryptionConfig());
    const cfg = parseEncryptionConfig(text);
    const [aes, identity] = cfg.resources[0].providers;
    expect(cfg.resources[0].resources).toEqual(["secrets"]);
    expect("aesgcm" in aes && aes.aesgcm.keys[0].secret.length).toBe(32);
    expect(identity).toEqual({ identity: {} });
  });

  it("rotation adds a new first key to every entry, then retires the others but keeps identity", () => {
    const { config, keyName } = addWriteKey(parseEncryptionConfig(valid));
    const first = config.resources[0].providers[0];
    expect("aesgcm" in first && first.aesgcm.keys.map((k) => k.name)).toEqual([keyName, "key1"]);
    const retired = retireOtherKeys(config);
    expect(parseEncryptionConfig(formatEncryptionConfig(retired)).resources[0].providers).toEqual([
      { aesgcm: { keys: [{ name: keyName, secret: expect.any(Uint8Array) }] } },
      { identity: {} },
    ]);
    // Encryption not enabled yet (identity first): rotation puts an aesgcm provider in front.
    const plain = parseEncryptionConfig(valid.replace(/- aesgcm:[\s\S]*?- identity/, "- identity"));
    const enabled = addWriteKey(plain).config.resources[0].providers;
    expect(enabled.map((p) => Object.keys(p)[0])).toEqual(["aesgcm", "identity"]);
  });

  it("skiff up's config: generated once, readable by its owner only, then left as it is", () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff-enc-"));
    try {
      const path = join(dir, "state", "encryption-config.yaml");
      expect(ensureEncryptionConfig(path)).toBe(true);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const first = readFileSync(path, "utf8");
      expect(readEncryptionConfig(path).resources[0].resources).toEqual(["secrets"]);
      expect(ensureEncryptionConfig(path)).toBe(false);
      expect(readFileSync(path, "utf8")).toBe(first);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
