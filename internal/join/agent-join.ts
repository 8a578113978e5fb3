// The joining agent's side (`skiff agent --server URL --token K10…`):
//
//   GET /cacerts (TLS not verified: nothing secret is sent) → sha256(CA DER) == token's hash?
//     no  → stop: the secret never leaves the machine
//     yes → from now on TLS is verified against that CA; make two keys + CSRs →
//           JoinNode with Bearer <id>.<secret> → store ca/client/serving under --data-dir (0600)
//
// An agent that already holds valid credentials for its name skips all of this.
import { createClient } from "@connectrpc/connect";
import https from "node:https";
import { NodeIdentityService, type NodeCertificates } from "../../gen/skiff/v1alpha1/node_identity_service_pb.js";
import { createServerTransport } from "../client/transport.ts";
import { createCsr } from "../pki/csr.ts";
import { nodeSecret, readValidCredentials, writeCredentials, type NodeCredentials } from "./credentials.ts";
import { NODE_USER_PREFIX, NODES_GROUP } from "./node-identity.ts";
import { bearerOf, caHashOf, parseJoinToken, type JoinToken } from "./token.ts";

const MAX_CA_BYTES = 64 * 1024;

/** The apiserver's /cacerts, read WITHOUT verifying its certificate (the caller checks the hash). */
export function fetchUnverifiedCa(server: string, timeoutMs = 10_000): Promise<string> {
  const url = new URL("/cacerts", server);
  if (url.protocol !== "https:") return Promise.reject(new Error(`--server must be an https:// URL, got "${server}"`));
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
        if (body.length > MAX_CA_BYTES) req.destroy(new Error(`${url.href}: answer larger than ${MAX_CA_BYTES} bytes`));
      });
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url.href} answered ${res.statusCode}: ${body.slice(0, 200)}`))));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${url.href}: no answer in ${timeoutMs / 1000} s`)));
    req.on("error", (err) => reject(new Error(`cannot fetch the cluster CA from ${url.href}: ${err.message}`, { cause: err })));
  });
}

/** Key pairs and CSRs for a node's client and serving certificates. */
export async function nodeCsrs(nodeName: string, servingSans: string[]) {
  const user = `${NODE_USER_PREFIX}${nodeName}`;
  const client = await createCsr({ commonName: user, organizations: [NODES_GROUP], sans: [] });
  const serving = await createCsr({ commonName: user, organizations: [], sans: servingSans });
  return { requests: { clientCsr: client.csr, servingCsr: serving.csr }, keys: { client: client.key, serving: serving.key } };
}

export function credentialsFrom(c: NodeCertificates | undefined, keys: { client: string; serving: string }): NodeCredentials {
  if (!c?.clientCertificate || !c.servingCertificate || !c.caCertificate) throw new Error("the apiserver answered without certificates");
  return { ca: c.caCertificate, cert: c.clientCertificate, key: keys.client, servingCert: c.servingCertificate, servingKey: keys.serving };
}

/**
 * The cluster CA from `server`'s /cacerts, fetched without trusting it and accepted only when its
 * sha256 is the token's: nothing secret has been sent when this throws.
 */
export async function verifiedCa(server: string, token: JoinToken): Promise<string> {
  const ca = await fetchUnverifiedCa(server);
  let hash: string;
  try {
    hash = caHashOf(ca);
  } catch (err) {
    throw new Error(`${server}/cacerts did not answer a PEM certificate: refusing to join`, { cause: err });
  }
  if (hash !== token.caHash) {
    throw new Error(`the CA of ${server} (sha256 ${hash}) is not the one the join token names (${token.caHash}): refusing to join; check --server, or get a token from this cluster (skiff token create)`);
  }
  return ca;
}

export interface JoinOptions {
  server: string;
  /** K10<hash>::<id>.<secret> */
  token: string;
  nodeName: string;
  dataDir: string;
  /** Names for the serving certificate: the node's name, localhost and its IP addresses (at most 16). */
  servingSans: string[];
  log?: { info(o: object, msg: string): void };
}

/** Valid stored credentials, or new ones from joining. Throws with the reason when the join is refused. */
export async function joinCluster(opts: JoinOptions): Promise<NodeCredentials> {
  const token = parseJoinToken(opts.token);
  const stored = readValidCredentials(opts.dataDir, opts.nodeName);
  if (stored.creds && caHashOf(stored.creds.ca) === token.caHash) {
    opts.log?.info({ dataDir: opts.dataDir }, "using the stored node credentials (no join needed)");
    return stored.creds;
  }
  opts.log?.info({ server: opts.server, reason: stored.creds ? "the stored CA is not the token's" : stored.why }, "joining the cluster");
  const ca = await verifiedCa(opts.server, token);
  const { requests, keys } = await nodeCsrs(opts.nodeName, opts.servingSans);
  const transport = createServerTransport(opts.server, { ca, token: bearerOf(token) });
  try {
    const res = await createClient(NodeIdentityService, transport).joinNode({ nodeName: opts.nodeName, nodeSecret: nodeSecret(opts.dataDir), requests }, { timeoutMs: 30_000 });
    const creds = credentialsFrom(res.certificates, keys);
    if (caHashOf(creds.ca) !== token.caHash) throw new Error("the apiserver's certificates come from another CA than the token names");
    writeCredentials(opts.dataDir, creds);
    opts.log?.info({ node: opts.nodeName, dataDir: opts.dataDir }, "joined: node certificates stored");
    return creds;
  } finally {
    transport.close();
  }
}
