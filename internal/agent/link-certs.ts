// Certificates for the apiserver → node agent link, made in memory: a CA, the agent's serving
// certificate (signed for the addresses the apiserver dials) and the apiserver's client
// certificate (CN system:apiserver, the only identity the agent's port accepts). `skiff up` and
// the tests use it until the cluster PKI issues these; ECDSA P-256, built with @peculiar/x509
// (which needs reflect-metadata loaded before it).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { KeyObject, webcrypto } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The client identity the agent's port accepts (Kubernetes' kube-apiserver-kubelet-client idea). */
export const APISERVER_CLIENT_CN = "system:apiserver";

/** A PEM certificate and its PEM (PKCS#8) private key. */
export interface CertKeyPair {
  cert: string;
  key: string;
}

/** What the agent's port serves with: its certificate and the CA its clients must come from. */
export interface AgentServingTls {
  cert: string;
  key: string;
  clientCa: string;
}

/** What the apiserver dials agents with: its client certificate and the CA agents' certificates come from. */
export interface KubeletClientTls {
  cert: string;
  key: string;
  ca: string;
}

export interface LinkCerts {
  ca: CertKeyPair;
  agent: AgentServingTls;
  apiserver: KubeletClientTls;
  /** Another client certificate from the same CA (tests: a caller that is not the apiserver). */
  issueClient(commonName: string): Promise<CertKeyPair>;
  /** Another agent serving certificate from the same CA, for these addresses (more nodes). */
  issueServing(sans: string[]): Promise<AgentServingTls>;
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const YEAR_MS = 365 * 86_400_000;
type X509Keys = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
type X509PublicKey = Parameters<typeof x509.SubjectKeyIdentifierExtension.create>[0];
type X509SigningKey = Extract<Parameters<typeof x509.X509CertificateGenerator.create>[0], { signingKey: unknown }>["signingKey"];

/**
 * A CA and the two link certificates. `sans`: the names and addresses the apiserver dials the
 * agent at (its Node's InternalIP); loopback is always included.
 */
export async function createLinkCerts(sans: string[] = []): Promise<LinkCerts> {
  const caKeys = await newKeys();
  const now = Date.now() - 60_000; // some clocks lag a little
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: ["skiff-agent-link-ca"] }],
    notBefore: new Date(now),
    notAfter: new Date(now + 10 * YEAR_MS),
    keys: caKeys as unknown as X509Keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const ca = { cert: caCert.toString("pem"), key: exportKey(caKeys.privateKey) };

  async function issue(commonName: string, usage: "server" | "client", names: string[] = []): Promise<CertKeyPair> {
    const keys = await newKeys();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    ];
    if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? "ip" : "dns", value: n }))));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: [{ CN: [commonName] }],
      issuer: caCert.subject,
      notBefore: new Date(now),
      notAfter: new Date(now + YEAR_MS),
      publicKey: keys.publicKey as unknown as X509PublicKey,
      signingKey: caKeys.privateKey as unknown as X509SigningKey,
      signingAlgorithm: ALG,
      extensions,
    });
    return { cert: cert.toString("pem"), key: exportKey(keys.privateKey) };
  }

  const issueServing = async (names: string[]): Promise<AgentServingTls> => ({
    ...(await issue("skiff-agent", "server", [...new Set(["127.0.0.1", "::1", "localhost", ...names])])),
    clientCa: ca.cert,
  });
  const client = await issue(APISERVER_CLIENT_CN, "client");
  return {
    ca,
    agent: await issueServing(sans),
    apiserver: { ...client, ca: ca.cert },
    issueClient: (cn) => issue(cn, "client"),
    issueServing,
  };
}

function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as Promise<webcrypto.CryptoKeyPair>;
}

function exportKey(k: webcrypto.CryptoKey): string {
  return KeyObject.from(k).export({ type: "pkcs8", format: "pem" }) as string;
}

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] & 0x7f) | 0x01; // positive, no leading zero byte
  return Buffer.from(b).toString("hex");
}
