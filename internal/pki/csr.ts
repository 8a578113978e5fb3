// Certificate signing requests (PKCS#10): the joining machine makes its key and a CSR, the
// server checks the CSR (its signature proves the requester holds the key) and signs the public
// key with the subject and names the signer decides — the private key never leaves the machine.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { ALG, exportKey } from "./certs.ts";

/** What a CSR asks for. */
export interface CsrSubject {
  commonName: string;
  organizations: string[];
  /** DNS names and IP addresses. */
  sans: string[];
}

/** A new ECDSA P-256 key (PKCS#8 PEM) and a CSR (PEM) for it. */
export async function createCsr(subject: CsrSubject): Promise<{ csr: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const name: Record<string, string[]>[] = [];
  if (subject.organizations.length) name.push({ O: subject.organizations });
  name.push({ CN: [subject.commonName] });
  const extensions: x509.Extension[] = [];
  if (subject.sans.length) extensions.push(new x509.SubjectAlternativeNameExtension(subject.sans.map((s) => ({ type: isIP(s) ? "ip" : "dns", value: s }))));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: keys as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]["keys"],
    signingAlgorithm: ALG,
    extensions,
  });
  return { csr: csr.toString("pem"), key: exportKey(keys.privateKey) };
}

/** A CSR, read and its self-signature checked; the error says what is wrong with it. */
export async function readCsr(pem: string): Promise<CsrSubject & { publicKey: webcrypto.CryptoKey }> {
  let req: x509.Pkcs10CertificateRequest;
  try {
    req = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new Error(`not a PEM certificate signing request: ${(err as Error).message}`, { cause: err });
  }
  if (!(await req.verify())) throw new Error("its signature does not match its public key");
  const publicKey = (await req.publicKey.export(ALG, ["verify"])) as unknown as webcrypto.CryptoKey;
  if (publicKey.algorithm.name !== "ECDSA" || (publicKey.algorithm as webcrypto.EcKeyAlgorithm).namedCurve !== "P-256") {
    throw new Error("its key must be ECDSA P-256");
  }
  const san = req.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  return {
    commonName: req.subjectName.getField("CN")[0] ?? "",
    organizations: req.subjectName.getField("O"),
    sans: san ? san.names.items.map((n) => n.value) : [],
    publicKey,
  };
}
