// The PKI tests and benchmarks use: made like `skiff up` makes it (ensurePki), once per process
// in a temp dir, plus helpers for the identities and broken credentials tests need.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentServingTls } from "../agent/server.ts";
import type { KubeletClientTls } from "../apiserver/pod-logs.ts";
import type { ApiCredentials } from "../client/credentials.ts";
import { createCa, issueCert, type CertKeyPair } from "./certs.ts";
import { ensurePki, nodeServingSans, type ClusterPki } from "./pki.ts";

export interface TestPki extends ClusterPki {
  /** The apiserver's TLS options (startApiServer's `tls`). */
  serving: { cert: string; key: string; clientCa: string };
  /** Client credentials for a certificate pair (the cluster CA as trust anchor). */
  credentials(pair: CertKeyPair): ApiCredentials;
  /** The admin's credentials (system:masters). */
  adminCredentials: ApiCredentials;
  /** The admin's TLS options for connect-node's transports (`nodeOptions`). */
  adminNodeOptions: { ca: string; cert: string; key: string };
  /** A client certificate from the cluster CA for any user and groups, e.g. an expired one. */
  issueClient(user: string, groups?: string[], validity?: { notBefore?: Date; notAfter?: Date }): Promise<CertKeyPair>;
  /** A node's certificate (`system:node:<name>` in `system:nodes`), made on first use. */
  nodeCredentials(name: string): Promise<ApiCredentials>;
  /** The apiserver's client TLS toward node agents (startApiServer's `kubeletClient`: CN system:apiserver). */
  kubeletClient: KubeletClientTls;
  /** A node agent's serving TLS (startAgentServer's / createAgent's `tls`) for the node and the addresses it is dialed at (loopback always). */
  agentServing(nodeName: string, addresses?: string[]): Promise<AgentServingTls>;
}

let cached: Promise<TestPki> | undefined;
let loaded: TestPki | undefined;

export function testPki(): Promise<TestPki> {
  return (cached ??= makeTestPki().then((p) => (loaded = p)));
}

/** The test PKI once testPki() has made it (every test harness awaits it before starting an apiserver). */
export function loadedTestPki(): TestPki {
  if (!loaded) throw new Error("the test PKI is not made yet: await testPki() first");
  return loaded;
}

/** The admin's credentials of the test PKI (after testPki()). */
export function adminCredentials(): ApiCredentials {
  return loadedTestPki().adminCredentials;
}

async function makeTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), "skiff-pki-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const pki = await ensurePki(dir, { nodeAddresses: [] });
  const credentials = (pair: CertKeyPair): ApiCredentials => ({ ca: pki.ca.cert, cert: pair.cert, key: pair.key });
  const nodes = new Map<string, Promise<ApiCredentials>>();
  return {
    ...pki,
    serving: { cert: pki.apiserver.cert, key: pki.apiserver.key, clientCa: pki.ca.cert },
    credentials,
    adminCredentials: credentials(pki.admin),
    adminNodeOptions: { ca: pki.ca.cert, cert: pki.admin.cert, key: pki.admin.key },
    kubeletClient: { ...pki.apiserverClient, ca: pki.ca.cert },
    agentServing: async (nodeName, addresses = []) => ({
      ...(await issueCert(pki.ca, { commonName: `system:node:${nodeName}`, sans: nodeServingSans(nodeName, addresses), usage: "server" })),
      clientCa: pki.ca.cert,
    }),
    issueClient: (user, groups = [], validity = {}) => issueCert(pki.ca, { commonName: user, organizations: groups, usage: "client", ...validity }),
    nodeCredentials(name) {
      let c = nodes.get(name);
      if (!c) {
        c = issueCert(pki.ca, { commonName: `system:node:${name}`, organizations: ["system:nodes"], usage: "client" }).then(credentials);
        nodes.set(name, c);
      }
      return c;
    },
  };
}

/** A CA the cluster does not know, and a client certificate from it ("wrong CA" tests). */
export async function foreignCa(): Promise<{ ca: CertKeyPair; client(user: string, groups?: string[]): Promise<CertKeyPair> }> {
  const ca = await createCa("not-the-cluster-ca");
  return { ca, client: (user, groups = ["system:masters"]) => issueCert(ca, { commonName: user, organizations: groups, usage: "client" }) };
}
