// A joined agent's credentials on disk, under its --data-dir (every file 0600, written atomically):
//
//   ca.crt                      the cluster CA, as checked against the join token's hash
//   client.crt / client.key     system:node:<name> (O system:nodes), toward the apiserver
//   serving.crt / serving.key   the agent port's certificate
//   node-secret                 the random secret that proves this machine holds the node name
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { signedBy } from "../pki/certs.ts";

export interface NodeCredentials {
  ca: string;
  cert: string;
  key: string;
  servingCert: string;
  servingKey: string;
}

const FILES = { ca: "ca.crt", cert: "client.crt", key: "client.key", servingCert: "serving.crt", servingKey: "serving.key" } as const;

export function writeCredentials(dataDir: string, c: NodeCredentials): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Keys first: a crash between files leaves a certificate that fails the key check below, never a key for an old certificate in use.
  for (const k of ["key", "servingKey", "cert", "servingCert", "ca"] as const) writePrivate(join(dataDir, FILES[k]), c[k]);
}

/** The stored credentials when complete, for this node, signed by their CA and not expired; else undefined (with why). */
export function readValidCredentials(dataDir: string, nodeName: string, now = Date.now()): { creds?: NodeCredentials; why: string } {
  const paths = Object.values(FILES).map((f) => join(dataDir, f));
  if (!paths.every((p) => existsSync(p))) return { why: "no stored credentials" };
  const creds = Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, readFileSync(join(dataDir, f), "utf8")])) as unknown as NodeCredentials;
  for (const [cert, key] of [[creds.cert, creds.key], [creds.servingCert, creds.servingKey]]) {
    let x: X509Certificate;
    try {
      x = new X509Certificate(cert);
    } catch {
      return { why: "a stored certificate does not parse" };
    }
    if (!signedBy(cert, creds.ca)) return { why: "a stored certificate is not signed by the stored CA" };
    if (new Date(x.validTo).getTime() <= now) return { why: "the stored certificates have expired" };
    if (!x.subject.split("\n").includes(`CN=system:node:${nodeName}`)) return { why: `the stored certificates are for another node name than "${nodeName}"` };
    try {
      if (!x.checkPrivateKey(createPrivateKey(key))) return { why: "a stored key does not match its certificate" };
    } catch {
      return { why: "a stored key does not parse" };
    }
  }
  return { creds, why: "" };
}

/** This machine's node secret, made once. */
export function nodeSecret(dataDir: string): string {
  const p = join(dataDir, "node-secret");
  if (existsSync(p)) return readFileSync(p, "utf8").trim();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const s = randomBytes(24).toString("hex");
  writePrivate(p, `${s}\n`);
  return s;
}

function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
