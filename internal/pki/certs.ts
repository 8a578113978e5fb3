// Certificates for the cluster: ECDSA P-256 keys from Node's crypto, X.509 built with
// @peculiar/x509 (which needs reflect-metadata loaded before it: its DI container reads it).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, generateKeyPairSync, KeyObject, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type Key = webcrypto.CryptoKey;
// @peculiar/x509 declares its parameters with the DOM's key types; Node's are the same objects.
type X509CertificateCreateSelfSignedKeys = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
type X509SigningKey = Extract<Parameters<typeof x509.X509CertificateGenerator.create>[0], { signingKey: unknown }>["signingKey"];
type X509Key = Parameters<typeof x509.SubjectKeyIdentifierExtension.create>[0];

export const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

/** A certificate and its private key, both PEM. */
export interface CertKeyPair {
  cert: string;
  key: string;
}

/** Who a certificate names, and what it may be used for. */
export interface CertSpec {
  /** CN: the user name (client certificates) or the server's name. */
  commonName: string;
  /** O: the groups of a client certificate. */
  organizations?: string[];
  /** DNS names and IP addresses (server certificates). */
  sans?: string[];
  usage: "server" | "client" | "server-and-client";
  /** Default now − 1 minute (some clocks lag a little). */
  notBefore?: Date;
  /** Default one year after notBefore. */
  notAfter?: Date;
}

/** A new self-signed CA valid for `years` (default 10). */
export async function createCa(commonName: string, years = 10): Promise<CertKeyPair> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [commonName] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + years * 365 * DAY_MS),
    keys: keys as unknown as X509CertificateCreateSelfSignedKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as X509Key),
    ],
  });
  return { cert: cert.toString("pem"), key: exportKey(keys.privateKey as Key) };
}

/** A leaf certificate signed by `ca`, with a new key. */
export async function issueCert(ca: CertKeyPair, spec: CertSpec): Promise<CertKeyPair> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await signPublicKey(ca, keys.publicKey as Key, spec);
  return { cert, key: exportKey(keys.privateKey as Key) };
}

/** A leaf certificate (PEM) for someone else's public key, signed by `ca`: what a signer does with a CSR. */
export async function signPublicKey(ca: CertKeyPair, publicKey: Key, spec: CertSpec): Promise<string> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const notBefore = spec.notBefore ?? new Date(Date.now() - 60_000);
  const usages: string[] = [];
  if (spec.usage !== "client") usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (spec.usage !== "server") usages.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(usages),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (spec.sans?.length) {
    extensions.push(new x509.SubjectAlternativeNameExtension(spec.sans.map((s) => ({ type: isIP(s) ? "ip" : "dns", value: s }))));
  }
  const subject: Record<string, string[]>[] = [];
  if (spec.organizations?.length) subject.push({ O: spec.organizations });
  subject.push({ CN: [spec.commonName] });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject,
    issuer: caCert.subject,
    notBefore,
    notAfter: spec.notAfter ?? new Date(notBefore.getTime() + 365 * DAY_MS),
    publicKey: publicKey as unknown as X509Key,
    signingKey: caKey as unknown as X509SigningKey,
    signingAlgorithm: ALG,
    extensions,
  });
  return cert.toString("pem");
}

/** An ECDSA P-256 key pair as PEM (PKCS#8 private, SPKI public): the ServiceAccount token signing key. */
export function createSigningKeyPair(): { privateKey: string; publicKey: string } {
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    publicKey: pair.publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}

/** Days a certificate has left (negative when expired). */
export function daysLeft(certPem: string, now = Date.now()): number {
  return (new Date(new X509Certificate(certPem).validTo).getTime() - now) / DAY_MS;
}

/** True when `certPem` was signed by `caPem`. */
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    return new X509Certificate(certPem).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false;
  }
}

export function exportKey(k: Key): string {
  return KeyObject.from(k).export({ type: "pkcs8", format: "pem" }) as string;
}

async function importKey(pem: string): Promise<Key> {
  const der = new Uint8Array(createPrivateKey(pem).export({ type: "pkcs8", format: "der" }));
  return webcrypto.subtle.importKey("pkcs8", der, ALG, false, ["sign"]);
}

function serial(): string {
  // Positive, 16 random bytes: unique enough that no two certificates of a CA share one.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  b[0] |= 0x01;
  return Buffer.from(b).toString("hex");
}

