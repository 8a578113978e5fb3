// The PKI of a test run, made like `skiff up` makes it (see internal/pki/testing.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { issueCert } from "../../internal/pki/certs.ts";
import type { TestPki } from "../../internal/pki/testing.ts";

export { foreignCa, testPki, type TestPki } from "../../internal/pki/testing.ts";

/** `skiff apiserver` flags for the test PKI's files (serving certificate, client CA, etcd client). */
export function apiserverTlsArgs(pki: TestPki): string[] {
  return [
    "--tls-cert-file", pki.files("apiserver").cert,
    "--tls-private-key-file", pki.files("apiserver").key,
    "--client-ca-file", pki.files("ca").cert,
    "--etcd-cafile", pki.files("ca").cert,
    "--etcd-certfile", pki.files("apiserver-client").cert,
    "--etcd-keyfile", pki.files("apiserver-client").key,
  ];
}

export interface TlsRequest {
  ca: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** An HTTPS/1.1 request checked against `ca`, with a client certificate if given (fetch cannot take a CA). */
export function requestTls(url: string, o: TlsRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: o.method ?? "GET", ca: o.ca, cert: o.cert, key: o.key, headers: o.headers, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${o.method ?? "GET"} ${url}: no answer in 5 s`)));
    req.on("error", reject);
    req.end(o.body);
  });
}

/** requestTls as a GET. */
export const getTls = (url: string, o: TlsRequest) => requestTls(url, { ...o, method: "GET" });

/**
 * Flags that make a component command (`skiff scheduler|controller-manager|agent`) connect as
 * `pair`'s identity; the files are written under `dir` as <name>.crt / <name>.key.
 */
export function clientCertArgs(pki: TestPki, pair: { cert: string; key: string }, dir: string, name: string): string[] {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.cert, { mode: 0o644 });
  writeFileSync(key, pair.key, { mode: 0o600 });
  return ["--certificate-authority", pki.files("ca").cert, "--client-certificate", cert, "--client-key", key];
}

/** The same for an identity the test PKI already has on disk ("scheduler", "controller-manager", "admin"). */
export function pkiFileArgs(pki: TestPki, name: string): string[] {
  return ["--certificate-authority", pki.files("ca").cert, "--client-certificate", pki.files(name).cert, "--client-key", pki.files(name).key];
}

/** A serving certificate for the apiserver on other addresses than loopback (a test bridge). */
export async function servingTlsFor(pki: TestPki, addresses: string[]): Promise<{ cert: string; key: string; clientCa: string }> {
  const pair = await issueCert(pki.ca, { commonName: "skiff-apiserver", sans: [...addresses, "127.0.0.1", "localhost"], usage: "server" });
  return { ...pair, clientCa: pki.ca.cert };
}

/** `skiff apiserver` flags that let it sign the certificates of agents joining with a token (the test PKI's CA), `ttl` their lifetime. */
export function nodeSignerArgs(pki: TestPki, ttl?: string): string[] {
  return ["--cluster-signing-cert-file", pki.files("ca").cert, "--cluster-signing-key-file", pki.files("ca").key, ...(ttl ? ["--node-certificate-ttl", ttl] : [])];
}
