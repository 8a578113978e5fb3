import { Code, ConnectError } from "@connectrpc/connect";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { kinds } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { createEncryptionAdmin } from "./admin.ts";
import { addWriteKey, generateEncryptionConfig, retireOtherKeys, writeEncryptionConfig, type EncryptionConfig } from "./config.ts";
import { keyLabelOf } from "./providers.ts";
import { createEncryptionState, resolveEncryptionConfig } from "./state.ts";
import { createEncryptingStore } from "./store.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString() : undefined);
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup(cfg: EncryptionConfig = generateEncryptionConfig()) {
  const dir = mkdtempSync(join(tmpdir(), "skiff-enc-"));
  dirs.push(dir);
  const configPath = join(dir, "enc.yaml");
  writeEncryptionConfig(configPath, cfg);
  const raw = createMemoryStore();
  const state = createEncryptionState(resolveEncryptionConfig(cfg, kinds));
  const store = createEncryptingStore(raw, state);
  const admin = createEncryptionAdmin({ raw, state, configPath, kinds });
  return { raw, store, admin, configPath, cfg };
}

describe("encrypting store", () => {
  it("encrypts secrets on every write path, returns plaintext on every read path, leaves other keys alone", async () => {
    const { raw, store } = setup();
    await store.create("/registry/secrets/a/one", bytes("s3cret-one"));
    await store.txn([{ op: "create", key: "/registry/secrets/a/two", value: bytes("s3cret-two") }]);
    const cm = await store.create("/registry/configmaps/a/c", bytes("plain-config"));
    expect(text(cm.value)).toBe("plain-config");
    const one = (await raw.get("/registry/secrets/a/one"))!;
    expect(text(one.value)).not.toContain("s3cret");
    expect(keyLabelOf(one.value)).toMatch(/^aesgcm:key-/);
    expect(text((await raw.get("/registry/configmaps/a/c"))!.value)).toBe("plain-config");

    expect(text((await store.get("/registry/secrets/a/one"))!.value)).toBe("s3cret-one");
    expect((await store.list("/registry/secrets/")).items.map((kv) => text(kv.value))).toEqual(["s3cret-one", "s3cret-two"]);
    const updated = await store.update("/registry/secrets/a/one", bytes("s3cret-1b"), one.modRevision);
    expect(text(updated.value)).toBe("s3cret-1b");
    expect(text((await raw.get("/registry/secrets/a/one"))!.value)).not.toContain("s3cret");

    // A conflict hands back the current value in plaintext, for the caller's retry.
    const err = await store.update("/registry/secrets/a/one", bytes("x"), one.modRevision).catch((e) => e);
    expect(text(err.current.value)).toBe("s3cret-1b");
    expect(text((await store.delete("/registry/secrets/a/two")).value)).toBe("s3cret-two");
  });

  it("decrypts watch events", async () => {
    const { store } = setup();
    const abort = new AbortController();
    const rev = await store.currentRevision();
    const events = store.watch("/registry/secrets/", rev + 1, abort.signal)[Symbol.asyncIterator]();
    await store.create("/registry/secrets/a/w", bytes("watched-value"));
    const { value: batch } = await events.next();
    expect(text(batch[0].value)).toBe("watched-value");
    abort.abort();
  });
});

describe("encryption admin", () => {
  it("rotation: reload a new first key, rewrite everything under it, retire the old one", async () => {
    const { raw, store, admin, configPath, cfg } = setup();
    await raw.create("/registry/secrets/a/legacy", bytes("written-before-encryption"));
    await store.create("/registry/secrets/a/enc", bytes("encrypted-value"));
    const oldKey = resolveEncryptionConfig(cfg, kinds)[0].transformer.writeKey;
    expect((await admin.status())[0].objectsByKey).toEqual({ identity: 1n, [oldKey]: 1n });

    const { config: added, keyName } = addWriteKey(cfg);
    writeEncryptionConfig(configPath, retireOtherKeys(added));
    // Retiring before the rewrite would strand an object: refused, old config kept.
    await expect(admin.reload()).rejects.toThrow(/could not read 1 secrets under aesgcm:key-/);
    writeEncryptionConfig(configPath, added);
    expect((await admin.reload())[0].writeKey).toBe(`aesgcm:${keyName}`);
    expect(text((await store.get("/registry/secrets/a/enc"))!.value)).toBe("encrypted-value");

    expect(await admin.rewrite()).toBe(2);
    expect(await admin.rewrite()).toBe(0);
    writeEncryptionConfig(configPath, retireOtherKeys(added));
    const after = await admin.reload();
    expect(after[0].objectsByKey).toEqual({ [`aesgcm:${keyName}`]: 2n });
    expect(text((await store.get("/registry/secrets/a/legacy"))!.value)).toBe("written-before-encryption");
    expect(text((await store.get("/registry/secrets/a/enc"))!.value)).toBe("encrypted-value");
  });

  it("a rewrite that conflicts with a writer re-reads and stores the newer value under the write key", async () => {
    const cfg = generateEncryptionConfig();
    const { raw, store, configPath } = setup(cfg);
    const oldKey = resolveEncryptionConfig(cfg, kinds)[0].transformer;
    const key = "/registry/secrets/a/raced";
    await store.create(key, bytes("first"));
    const { config: added, keyName } = addWriteKey(cfg);
    writeEncryptionConfig(configPath, added);
    // An apiserver still on the old config writes between the rewrite's read and its write.
    let raced = false;
    const racing: typeof raw = {
      ...raw,
      list: raw.list.bind(raw),
      get: raw.get.bind(raw),
      async update(k, value, rev) {
        if (!raced) {
          raced = true;
          await raw.update(k, oldKey.toStorage(bytes("second"), k), rev);
        }
        return raw.update(k, value, rev);
      },
    };
    const state = createEncryptionState(resolveEncryptionConfig(cfg, kinds));
    const admin = createEncryptionAdmin({ raw: racing, state, configPath, kinds });
    await admin.reload();
    expect(await admin.rewrite()).toBe(1);
    const stored = (await raw.get(key))!;
    expect(keyLabelOf(stored.value)).toBe(`aesgcm:${keyName}`);
    expect(text((await createEncryptingStore(raw, state).get(key))!.value)).toBe("second");
  });

  it("a reload of a bad file keeps the config in use and says why", async () => {
    const { admin, configPath } = setup();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(configPath, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n");
    const err = await admin.reload().catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toMatch(/kept its encryption config: .*resources: must list at least one entry/);
    expect((await admin.status())[0].writeKey).toMatch(/^aesgcm:/);
  });
});
