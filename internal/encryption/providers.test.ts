import { randomBytes } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { assertPlaintext, createResourceTransformer, keyLabelOf, UndecryptableError, type ProviderConfig } from "./providers.ts";

const key = (name: string, bytes = 32) => ({ name, secret: new Uint8Array(randomBytes(bytes)) });
const text = (b: Uint8Array) => Buffer.from(b).toString();
const ctx = "/registry/secrets/default/db";

describe("resource transformer", () => {
  const k1 = key("k1");
  const k2 = key("k2");
  const plain = new TextEncoder().encode("password=hunter2");

  it("stores aesgcm values under a prefix naming the key, without the plaintext, and reads them back", () => {
    const t = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    const stored = t.toStorage(plain, ctx);
    expect(text(stored.subarray(0, 21))).toBe("k8s:enc:aesgcm:v1:k1:");
    expect(text(stored)).not.toContain("hunter2");
    expect(keyLabelOf(stored)).toBe("aesgcm:k1");
    expect(text(t.fromStorage(stored, ctx))).toBe("password=hunter2");
  });

  it("uses a fresh nonce per write", () => {
    const t = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    expect(Buffer.compare(t.toStorage(plain, ctx), t.toStorage(plain, ctx))).not.toBe(0);
  });

  it("accepts 16- and 24-byte keys (AES-128/192)", () => {
    for (const bytes of [16, 24]) {
      const t = createResourceTransformer("secrets", [{ aesgcm: { keys: [key("short", bytes)] } }]);
      expect(text(t.fromStorage(t.toStorage(plain, ctx), ctx))).toBe("password=hunter2");
    }
  });

  it("writes with the first key and reads with every key listed", () => {
    const old = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    const rotated = createResourceTransformer("secrets", [{ aesgcm: { keys: [k2, k1] } }, { identity: {} }]);
    expect(rotated.writeKey).toBe("aesgcm:k2");
    expect(keyLabelOf(rotated.toStorage(plain, ctx))).toBe("aesgcm:k2");
    expect(text(rotated.fromStorage(old.toStorage(plain, ctx), ctx))).toBe("password=hunter2");
    expect(text(rotated.fromStorage(plain, ctx))).toBe("password=hunter2");
  });

  it("refuses a value under a key it does not have, naming the key and the object", () => {
    const old = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    const other = createResourceTransformer("secrets", [{ aesgcm: { keys: [k2] } }, { identity: {} }]);
    const read = () => other.fromStorage(old.toStorage(plain, ctx), ctx);
    expect(read).toThrow(UndecryptableError);
    expect(read).toThrow(ConnectError);
    expect(new ConnectError("other")).not.toBeInstanceOf(UndecryptableError);
    expect(read).toThrow(/secrets "default\/db" is stored under aesgcm:k1, which .* does not have/);
  });

  it("refuses a key with the same name but another secret, and a value moved to another storage key", () => {
    const t = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    const impostor = createResourceTransformer("secrets", [{ aesgcm: { keys: [{ name: "k1", secret: key("x").secret }] } }]);
    const stored = t.toStorage(plain, ctx);
    expect(() => impostor.fromStorage(stored, ctx)).toThrow(/does not decrypt with aesgcm:k1/);
    expect(() => t.fromStorage(stored, "/registry/secrets/default/other")).toThrow(/does not decrypt/);
    expect(() => t.fromStorage(stored.subarray(0, 30), ctx)).toThrow(/does not decrypt/);
  });

  it("reads plaintext only when identity is listed", () => {
    const without = createResourceTransformer("secrets", [{ aesgcm: { keys: [k1] } }]);
    expect(() => without.fromStorage(plain, ctx)).toThrow(/stored unencrypted .* no identity provider/);
  });

  it("identity first writes plaintext", () => {
    const providers: ProviderConfig[] = [{ identity: {} }, { aesgcm: { keys: [k1] } }];
    const t = createResourceTransformer("secrets", providers);
    expect(t.writeKey).toBe("identity");
    expect(text(t.toStorage(plain, ctx))).toBe("password=hunter2");
  });
});

describe("assertPlaintext", () => {
  it("passes protobuf and refuses ciphertext with a clear error", () => {
    expect(() => assertPlaintext(new Uint8Array([0x0a, 0x02, 0x08, 0x01]), "configmaps")).not.toThrow();
    const t = createResourceTransformer("configmaps", [{ aesgcm: { keys: [key("k9")] } }]);
    expect(() => assertPlaintext(t.toStorage(new Uint8Array([0x0a]), "/registry/configmaps/a/b"), "configmaps")).toThrow(
      /encrypted \(aesgcm:k9\), but this apiserver's encryption config does not cover configmaps/,
    );
  });
});
