// `skiff apiserver --encryption-provider-config` and `skiff secrets-encrypt` as a user runs them.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { generateEncryptionConfig, writeEncryptionConfig } from "../../internal/encryption/config.ts";
import { adminConfigFile } from "../../internal/cli/testing.ts";
import { apiserverTlsArgs, clientCertArgs, getTls, testPki } from "../harness/pki.ts";
import { freePort } from "../harness/ports.ts";

const run = promisify(execFile);
let child: ChildProcess | undefined;
let dir: string | undefined;
afterEach(() => {
  child?.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
  child = dir = undefined;
});

// secrets-encrypt connects like skiffctl: the admin's config file (as `skiff up` writes one).
const skiff = (...args: string[]) => run(process.execPath, ["cmd/skiff.ts", ...args], { env: { ...process.env, SKIFF_LOG_FORMAT: "json", SKIFF_CONFIG: adminConfigFile() } });

describe("skiff secrets-encrypt", () => {
  it("status and rotate-keys against a running apiserver", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-enc-cli-"));
    const config = join(dir, "enc.yaml");
    writeEncryptionConfig(config, generateEncryptionConfig());
    const oldKey = /name: (\S+)/.exec(readFileSync(config, "utf8"))![1];
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const pki = await testPki();
    child = spawn(process.execPath, ["cmd/skiff.ts", "apiserver", "--store", "memory", "--listen", `127.0.0.1:${port}`, ...apiserverTlsArgs(pki), "--encryption-provider-config", config], {
      stdio: "ignore",
    });
    await expect.poll(async () => (await getTls(`${url}/readyz`, { ca: pki.ca.cert }).catch(() => undefined))?.status, { timeout: 20_000, interval: 100 }).toBe(200);
    const secrets = createResourceClient<Secret>(createApiTransport(url, pki.adminCredentials), "Secret");
    await secrets.create(create(SecretSchema, { metadata: { name: "s", namespace: "default" }, data: { k: Buffer.from("v") } }));

    const before = await skiff("secrets-encrypt", "status", "--server", url);
    expect(before.stdout).toMatch(new RegExp(`^RESOURCE +WRITE KEY +OBJECTS BY KEY\\nsecrets +aesgcm:${oldKey} +aesgcm:${oldKey}=1\\n$`));

    const rotated = await skiff("secrets-encrypt", "rotate-keys", "--server", url, "--encryption-provider-config", config);
    const newKey = /new key (\S+) added/.exec(rotated.stdout)![1];
    expect(rotated.stdout).toContain(`secrets   aesgcm:${newKey}  aesgcm:${newKey}=1`);
    expect(readFileSync(config, "utf8")).not.toContain(oldKey);
    expect(Buffer.from((await secrets.get("default", "s")).data.k).toString()).toBe("v");
    const again = await skiff("secrets-encrypt", "rewrite", "--server", url);
    expect(again.stdout).toMatch(/^rewrote 0 objects\n/);

    // Someone without a grant on encryptionconfigurations learns nothing.
    const jane = clientCertArgs(pki, await pki.issueClient("jane"), join(dir, "jane"), "jane");
    const refused = await skiff("secrets-encrypt", "status", "--server", url, ...jane).catch((e) => e);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('User "jane" cannot get resource "encryptionconfigurations" in API group "apiserver.config.k8s.io"');
  }, 60_000);

  it("a bad config stops the apiserver at start with one line naming the problem", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-enc-cli-"));
    const config = join(dir, "enc.yaml");
    writeFileSync(config, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers: [{kms: {}}]\n");
    const port = await freePort();
    const err = await skiff("apiserver", "--store", "memory", "--listen", `127.0.0.1:${port}`, ...apiserverTlsArgs(await testPki()), "--encryption-provider-config", config).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain("resources[0].providers[0]: provider kms is not supported: use aesgcm or identity");
  }, 30_000);
});
