// How one resource's objects are stored: the providers of its EncryptionConfiguration entry, in
// order. The first provider (with aesgcm: its first key) encrypts every write; all of them read.
// An encrypted value names its provider and key in a plaintext prefix, like Kubernetes
// (`k8s:enc:aesgcm:v1:<key name>:`), so a read picks the right key; a value without that prefix
// is plaintext (identity), written before encryption was enabled.
import { Code, ConnectError } from "@connectrpc/connect";
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const ENCRYPTED = "k8s:enc:";
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const enc = new TextEncoder();
const ENCRYPTED_BYTES = enc.encode(ENCRYPTED);
const latin1 = new TextDecoder("latin1");

export type ProviderConfig = { aesgcm: { keys: { name: string; secret: Uint8Array }[] } } | { identity: Record<string, never> };

/** A stored value's provider and key as status reports it: "aesgcm:<key name>" or "identity". */
export type KeyLabel = string;

export const IDENTITY: KeyLabel = "identity";

/** A stored object this apiserver cannot read with its config: served as FAILED_PRECONDITION, never as garbage. */
export class UndecryptableError extends ConnectError {
  constructor(message: string) {
    // name stays "ConnectError": connect recognises its errors by it.
    super(message, Code.FailedPrecondition);
  }

  // ConnectError's own check would say yes for every ConnectError.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && Object.prototype.isPrototypeOf.call(UndecryptableError.prototype, v);
  }
}

/** The label of a stored value: which provider and key wrote it. */
export function keyLabelOf(value: Uint8Array): KeyLabel {
  if (!startsWith(value, ENCRYPTED)) return IDENTITY;
  // k8s:enc:<provider>:v1:<key name>:
  const head = latin1.decode(value.subarray(0, Math.min(value.length, 200))).split(":");
  return head.length >= 6 ? `${head[2]}:${head[4]}` : "malformed";
}

/** Refuses a stored value that is encrypted, for resources this apiserver stores in plaintext. */
export function assertPlaintext(value: Uint8Array, resource: string): void {
  // Protobuf objects start with field 1 (0x0a); "k" (0x6b) can only be an encryption prefix.
  if (value[0] === 0x6b && startsWith(value, ENCRYPTED)) {
    throw new UndecryptableError(
      `a stored ${resource} object is encrypted (${keyLabelOf(value)}), but this apiserver's encryption config does not cover ${resource}: start it with an --encryption-provider-config that has the key`,
    );
  }
}

export interface ResourceTransformer {
  /** The plural resource, as the config names it ("secrets"). */
  readonly resource: string;
  /** What new writes use. */
  readonly writeKey: KeyLabel;
  /** Every label this transformer can read. */
  readonly readable: ReadonlySet<KeyLabel>;
  /** `context` is the storage key: authenticated, so a value cannot be moved to another key. */
  toStorage(plain: Uint8Array, context: string): Uint8Array;
  fromStorage(stored: Uint8Array, context: string): Uint8Array;
}

interface AesKey {
  label: KeyLabel;
  prefix: Uint8Array;
  secret: Buffer;
}

export function createResourceTransformer(resource: string, providers: ProviderConfig[]): ResourceTransformer {
  const keys: AesKey[] = [];
  let identity = false;
  let writer: AesKey | "identity" | undefined;
  for (const p of providers) {
    if ("identity" in p) {
      identity = true;
      writer ??= "identity";
      continue;
    }
    for (const k of p.aesgcm.keys) {
      const key = { label: `aesgcm:${k.name}`, prefix: enc.encode(`${ENCRYPTED}aesgcm:v1:${k.name}:`), secret: Buffer.from(k.secret) };
      keys.push(key);
      writer ??= key;
    }
  }
  if (!writer) throw new Error(`encryption config for ${resource} has no provider`);
  const readable = new Set(keys.map((k) => k.label));
  if (identity) readable.add(IDENTITY);
  const what = (context: string) => `${resource} "${context.split("/").slice(3).join("/")}"`;

  return {
    resource,
    writeKey: writer === "identity" ? IDENTITY : writer.label,
    readable,
    toStorage(plain, context) {
      if (writer === "identity") return plain;
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv(aesName(writer!.secret), writer!.secret, nonce);
      cipher.setAAD(enc.encode(context));
      const body = cipher.update(plain);
      cipher.final();
      return Buffer.concat([writer!.prefix, nonce, body, cipher.getAuthTag()]);
    },
    fromStorage(stored, context) {
      if (!startsWith(stored, ENCRYPTED)) {
        if (identity) return stored;
        throw new UndecryptableError(
          `${what(context)} is stored unencrypted and the encryption config for ${resource} has no identity provider: add "identity: {}" as the last provider to read it`,
        );
      }
      const key = keys.find((k) => startsWith(stored, k.prefix));
      if (!key) {
        throw new UndecryptableError(
          `${what(context)} is stored under ${keyLabelOf(stored)}, which this apiserver's --encryption-provider-config does not have: add that key to the config (and reload) to read it`,
        );
      }
      const nonce = stored.subarray(key.prefix.length, key.prefix.length + NONCE_BYTES);
      const tag = stored.subarray(stored.length - TAG_BYTES);
      const body = stored.subarray(key.prefix.length + NONCE_BYTES, stored.length - TAG_BYTES);
      try {
        if (stored.length < key.prefix.length + NONCE_BYTES + TAG_BYTES) throw new Error("too short");
        const decipher = createDecipheriv(aesName(key.secret), key.secret, nonce);
        decipher.setAAD(enc.encode(context));
        decipher.setAuthTag(tag);
        const out = decipher.update(body);
        decipher.final();
        return out;
      } catch {
        throw new UndecryptableError(
          `${what(context)} does not decrypt with ${key.label}: the key's secret differs from the one that wrote it, or the stored value is damaged`,
        );
      }
    },
  };
}

function aesName(secret: Buffer): "aes-128-gcm" | "aes-192-gcm" | "aes-256-gcm" {
  return `aes-${secret.length * 8}-gcm` as "aes-128-gcm" | "aes-192-gcm" | "aes-256-gcm";
}

function startsWith(value: Uint8Array, prefix: string | Uint8Array): boolean {
  const p = prefix === ENCRYPTED ? ENCRYPTED_BYTES : typeof prefix === "string" ? enc.encode(prefix) : prefix;
  if (value.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (value[i] !== p[i]) return false;
  return true;
}
