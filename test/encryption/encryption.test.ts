// Secrets encrypted at rest on a real etcd: the raw etcd value holds no plaintext, every API path
// (get, list, watch; direct gRPC and Connect) returns plaintext, keys rotate while the apiserver
// serves, and an apiserver without the key refuses such Secrets with a clear error.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import { EncryptionService } from "../../gen/skiff/v1alpha1/encryption_service_pb.js";
import { startApiServer, type ApiServer } from "../../internal/apiserver/server.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { rotateKeys } from "../../internal/cmd/secrets-encrypt.ts";
import { generateEncryptionConfig, readEncryptionConfig, writeEncryptionConfig } from "../../internal/encryption/config.ts";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let dir: string;
let configPath: string;
const extra: ApiServer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "skiff-encryption-"));
  configPath = join(dir, "encryption-config.yaml");
  writeEncryptionConfig(configPath, generateEncryptionConfig());
  cp = await startControlPlane({ encryptionProviderConfig: configPath });
}, 60_000);
afterAll(async () => {
  for (const s of extra) await s.close();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const secret = (name: string, data: Record<string, string>): Secret =>
  create(SecretSchema, { metadata: { name, namespace: "default" }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])) });
const dataOf = (s: Secret) => Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v).toString()]));
const raw = async (plural: string, name: string) => Buffer.from((await cp.store.get(`/registry/${plural}/default/${name}`))!.value).toString("latin1");
const writeKeyName = () => {
  const first = readEncryptionConfig(configPath).resources[0].providers[0];
  return "aesgcm" in first ? first.aesgcm.keys[0].name : "";
};
/** Another apiserver on the same etcd, e.g. one without the key. */
async function anotherApiServer(encryptionProviderConfig?: string) {
  const server = await startApiServer({ tls: cp.pki.serving, store: cp.store, port: 0, heartbeatMs: 1000, encryptionProviderConfig });
  extra.push(server);
  return { server, secrets: createResourceClient<Secret>(createApiTransport(server.url, cp.pki.adminCredentials), "Secret") };
}

describe("Secrets encrypted at rest", () => {
  it("stores no plaintext in etcd, under a prefix naming the key, and serves plaintext on every path", async () => {
    const secrets = cp.client<Secret>("Secret");
    const created = await secrets.create(secret("db", { password: "correct-horse-battery" }));
    expect(dataOf(created)).toEqual({ password: "correct-horse-battery" });

    const stored = await raw("secrets", "db");
    expect(stored.startsWith(`k8s:enc:aesgcm:v1:${writeKeyName()}:`)).toBe(true);
    expect(stored).not.toContain("correct-horse-battery");

    expect(dataOf(await secrets.get("default", "db"))).toEqual({ password: "correct-horse-battery" });
    expect((await secrets.list("default")).items.map(dataOf)).toEqual([{ password: "correct-horse-battery" }]);
    // The Connect protocol (not the direct gRPC path) too.
    const viaConnect = createResourceClient<Secret>(createConnectTransport({ baseUrl: cp.server.url, httpVersion: "1.1", nodeOptions: cp.pki.adminNodeOptions }), "Secret");
    expect(dataOf(await viaConnect.get("default", "db"))).toEqual({ password: "correct-horse-battery" });
  });

  it("leaves ConfigMaps in plaintext when the config does not name them", async () => {
    await cp.client("ConfigMap").create(configMap("settings", { mode: "visible-config-value" }));
    expect(await raw("configmaps", "settings")).toContain("visible-config-value");
  });

  it("delivers decrypted objects to watches", async () => {
    const secrets = cp.client<Secret>("Secret");
    const { resourceVersion } = await secrets.list("default");
    const abort = new AbortController();
    const events = secrets.watch("default", { resourceVersion, signal: abort.signal })[Symbol.asyncIterator]();
    await secrets.create(secret("watched", { token: "watch-me-decrypted" }));
    let ev = await events.next();
    while (ev.value.type === "BOOKMARK") ev = await events.next();
    expect(ev.value.type).toBe("ADDED");
    expect(dataOf(ev.value.object)).toEqual({ token: "watch-me-decrypted" });
    abort.abort();
  });

  it("rotates keys while serving: every Secret reads back unchanged, stored under the new key", async () => {
    // A Secret written before encryption was enabled, by an apiserver without a config.
    const plain = await anotherApiServer();
    await plain.secrets.create(secret("legacy", { old: "written-in-plaintext" }));
    expect(await raw("secrets", "legacy")).toContain("written-in-plaintext");

    const secrets = cp.client<Secret>("Secret");
    for (let i = 0; i < 5; i++) await secrets.create(secret(`app-${i}`, { value: `value-${i}` }));
    await secrets.create(secret("busy", { n: "0" }));
    const before = new Map((await secrets.list("default")).items.map((s) => [s.metadata!.name, dataOf(s)]));
    const oldKey = writeKeyName();

    // A client keeps reading and writing through the whole rotation.
    let running = true;
    let writes = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      while (running) {
        try {
          const busy = await secrets.get("default", "busy");
          busy.data = { n: Buffer.from(String(writes + 1)) };
          await secrets.update(busy);
          writes++;
          expect(dataOf(await secrets.get("default", "app-0"))).toEqual({ value: "value-0" });
        } catch (err) {
          // A conflict with the rewrite is optimistic concurrency at work: read again and retry.
          if (!(err instanceof ConnectError && err.code === Code.Aborted)) failures.push(String(err));
        }
      }
    })();
    const lines: string[] = [];
    const status = await rotateKeys(createClient(EncryptionService, cp.transport), configPath, (l) => lines.push(l));
    running = false;
    await traffic;
    expect(failures).toEqual([]);

    const newKey = writeKeyName();
    expect(newKey).not.toBe(oldKey);
    expect(readFileSync(configPath, "utf8")).not.toContain(oldKey);
    const total = (await secrets.list("default")).items.length;
    expect(status).toHaveLength(1);
    expect(status[0].writeKey).toBe(`aesgcm:${newKey}`);
    expect(status[0].objectsByKey).toEqual({ [`aesgcm:${newKey}`]: BigInt(total) });

    for (const [name, data] of before) {
      const now = dataOf(await secrets.get("default", name!));
      expect(now).toEqual(name === "busy" ? { n: String(writes) } : data);
      expect((await raw("secrets", name!)).startsWith(`k8s:enc:aesgcm:v1:${newKey}:`)).toBe(true);
    }
    expect(lines.join("\n")).toMatch(/new key .* added[\s\S]*rewrote \d+ objects[\s\S]*old keys retired/);
  }, 60_000);

  it("an apiserver without the key starts, serves everything else, and refuses those Secrets clearly", async () => {
    await cp.client<Secret>("Secret").create(secret("guarded", { password: "never-as-garbage" }));
    const keyName = writeKeyName();

    const none = await anotherApiServer();
    const err = await none.secrets.get("default", "guarded").catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain(`encrypted (aesgcm:${keyName}), but this apiserver's encryption config does not cover secrets`);
    await expect(none.secrets.list("default")).rejects.toThrow(/does not cover secrets/);
    const watchErr = await (async () => {
      for await (const ev of none.secrets.watch("default")) void ev;
    })().catch((e) => e);
    expect(watchErr.code).toBe(Code.FailedPrecondition);
    const cms = createResourceClient(createApiTransport(none.server.url, cp.pki.adminCredentials), "ConfigMap");
    expect((await cms.get("default", "settings")).metadata?.name).toBe("settings");

    // With a config that has other keys: the error names the missing one.
    const otherConfig = join(dir, "other-key.yaml");
    writeEncryptionConfig(otherConfig, generateEncryptionConfig());
    const other = await anotherApiServer(otherConfig);
    const err2 = await other.secrets.get("default", "guarded").catch((e) => e);
    expect(err2.code).toBe(Code.FailedPrecondition);
    expect(err2.rawMessage).toBe(
      `secrets "default/guarded" is stored under aesgcm:${keyName}, which this apiserver's --encryption-provider-config does not have: add that key to the config (and reload) to read it`,
    );

    // Given the key (file edited, reloaded; no restart) it reads them, and its watches recover.
    const withKey = readEncryptionConfig(otherConfig);
    const ours = readEncryptionConfig(configPath).resources[0].providers[0];
    const theirs = withKey.resources[0].providers[0];
    if (!("aesgcm" in ours && "aesgcm" in theirs)) throw new Error("generated configs start with aesgcm");
    theirs.aesgcm.keys.push(...ours.aesgcm.keys);
    writeEncryptionConfig(otherConfig, withKey);
    await createClient(EncryptionService, createApiTransport(other.server.url, cp.pki.adminCredentials)).reloadEncryptionConfig({});
    expect(dataOf(await other.secrets.get("default", "guarded"))).toEqual({ password: "never-as-garbage" });
    await expect
      .poll(async () => {
        const abort = new AbortController();
        try {
          for await (const ev of other.secrets.watch("default", { signal: abort.signal })) return ev.type;
        } catch (err) {
          return String(err);
        } finally {
          abort.abort();
        }
      }, { timeout: 20_000, interval: 200 })
      .toBe("ADDED");
  }, 60_000);

  it("refuses to start on a bad or missing config, naming the problem", async () => {
    const bad = join(dir, "bad.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(bad, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers: [{aesgcm: {keys: [{name: k, secret: dG9vLXNob3J0}]}}]\n");
    await expect(startApiServer({ tls: cp.pki.serving, store: cp.store, port: 0, encryptionProviderConfig: bad })).rejects.toThrow(
      /bad\.yaml is invalid: resources\[0\]\.providers\[0\]\.aesgcm\.keys\[0\]\.secret: must be base64 of 16, 24 or 32 random bytes/,
    );
    await expect(startApiServer({ tls: cp.pki.serving, store: cp.store, port: 0, encryptionProviderConfig: join(dir, "absent.yaml") })).rejects.toThrow(/cannot read --encryption-provider-config .*absent\.yaml: ENOENT/);
  });
});
