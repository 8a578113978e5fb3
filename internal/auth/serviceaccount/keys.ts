// The ServiceAccount signing key: an ECDSA P-256 private key (PEM, PKCS#8 or SEC1) that signs
// tokens, and public keys (PEM, SPKI) that verify them. Several public keys may be trusted at once
// so that a key can be rotated without invalidating the tokens already handed out.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The "kid" header of tokens it signs: base64url(SHA-256(SPKI DER)), as Kubernetes derives it. */
  keyId: string;
}

export interface VerifyKey {
  publicKey: KeyObject;
  keyId: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest("base64url");
}

function requireP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new Error(`${what}: a ServiceAccount key must be ECDSA P-256 (ES256), got ${key.asymmetricKeyType ?? "unknown"} ${key.asymmetricKeyDetails?.namedCurve ?? ""}`.trim());
  }
}

/** Node's crypto errors name no file: say which key and what was expected. */
function parse<T>(what: string, expected: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw new Error(`${what}: not ${expected} (${(err as Error).message})`, { cause: err });
  }
}

export function signingKeyFromPem(pem: string, what = "service account signing key"): SigningKey {
  const privateKey = parse(what, "a PEM private key", () => createPrivateKey(pem));
  requireP256(privateKey, what);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** Public keys from PEM text that may hold several keys (or private keys, whose public half is used). */
export function verifyKeysFromPem(pem: string, what = "service account key file"): VerifyKey[] {
  const blocks = pem.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${what}: no PEM key found`);
  return blocks.map((b) => {
    const publicKey = parse(what, "a PEM public key", () => createPublicKey(b));
    requireP256(publicKey, what);
    return { publicKey, keyId: keyIdOf(publicKey) };
  });
}

/** A fresh key pair as PEM (PKCS#8 private, SPKI public). */
export function generateSigningKeyPem(): { privateKey: string; publicKey: string } {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}
