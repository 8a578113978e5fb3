// `skiff agent --server URL --token K10…`: the agent's credentials come from joining (internal/join)
// instead of files, and are renewed while it runs. It holds every apiserver, as the components
// do: the one given, those the `kubernetes` Endpoints list (kept in <data-dir>/servers for the
// next start, when the given one may be down) — one failover transport, whose per-server
// connections all take the renewed certificate.
import type { Transport } from "@connectrpc/connect";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import net from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { AgentServingTls } from "../agent/server.ts";
import { createFailoverTransport } from "../client/failover.ts";
import { createServerTransport } from "../client/transport.ts";
import type { GrpcTransport } from "../client/grpc-transport.ts";
import { joinCluster } from "../join/agent-join.ts";
import { nodeSecret, type NodeCredentials } from "../join/credentials.ts";
import { NODE_IDENTITY_ANNOTATION, nodeIdentityOf } from "../join/node-identity.ts";
import { startCertificateRenewer, type CertificateRenewer } from "../join/renewal.ts";

export const JOIN_TOKEN_PREFIX = "K10";

export interface JoinedConnection {
  transport: Transport;
  ca: string;
  tls: AgentServingTls;
  /** The Node's identity record, for registering it again after it was deleted. */
  nodeAnnotations: Record<string, string>;
  /** Starts renewing; `reloadServing` gets each renewed serving certificate. */
  startRenewal(reloadServing: (tls: AgentServingTls) => void): CertificateRenewer;
}

const servingTls = (c: NodeCredentials): AgentServingTls => ({ cert: c.servingCert, key: c.servingKey, clientCa: c.ca });

/** Names of the agent port's certificate: the node, loopback, --node-ip, the --listen host and the machine's addresses. */
export function servingSans(nodeName: string, nodeIP: string | undefined, listenHost: string): string[] {
  const machine = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && !(a.family === "IPv6" && a.address.startsWith("fe80")))
    .map((a) => a!.address);
  const listen = net.isIP(listenHost) && listenHost !== "0.0.0.0" && listenHost !== "::" ? [listenHost] : [];
  return [...new Set([nodeName, "localhost", "127.0.0.1", ...(nodeIP ? [nodeIP] : []), ...listen, ...machine])].slice(0, 16);
}

export async function joinedConnection(o: {
  server: string | undefined;
  token: string;
  nodeName: string;
  dataDir: string;
  sans: string[];
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}): Promise<JoinedConnection> {
  if (!o.server) throw new Error("joining with --token K10… needs --server https://HOST:PORT (a server of the cluster)");
  if (o.server.includes(",")) throw new Error(`--server with --token K10… takes one URL (the others are learned from the cluster), got "${o.server}"`);
  let creds = await joinCluster({ server: o.server, token: o.token, nodeName: o.nodeName, dataDir: o.dataDir, servingSans: o.sans, log: o.log });
  // One connection per apiserver, each made with the credentials of the moment and given the renewed ones.
  const perServer: GrpcTransport[] = [];
  const serversFile = join(o.dataDir, SERVERS_FILE);
  const transport = createFailoverTransport({
    servers: [o.server, ...readKnownServers(serversFile)],
    connect(url) {
      const t = createServerTransport(url, { ca: creds.ca, cert: creds.cert, key: creds.key });
      perServer.push(t);
      return t;
    },
    discover: true,
    onMove: (from, to, reason) => o.log.warn({ from, to, reason }, "apiserver unavailable: moving to another"),
    onDiscovered: (servers) => writeKnownServers(serversFile, servers),
  });
  return {
    transport,
    ca: creds.ca,
    tls: servingTls(creds),
    nodeAnnotations: { [NODE_IDENTITY_ANNOTATION]: nodeIdentityOf(nodeSecret(o.dataDir)) },
    startRenewal: (reloadServing) =>
      startCertificateRenewer({
        transport,
        nodeName: o.nodeName,
        dataDir: o.dataDir,
        servingSans: o.sans,
        current: creds,
        log: o.log,
        apply(next) {
          creds = next;
          for (const t of perServer) t.updateTls({ ca: next.ca, cert: next.cert, key: next.key });
          reloadServing(servingTls(next));
        },
      }),
  };
}

const SERVERS_FILE = "servers";
/** Bounded: the file is ours, but a damaged one must not grow the list without end. */
const MAX_KNOWN_SERVERS = 64;

/** The apiservers the cluster listed last time (one https URL a line); none when there is no such file. */
export function readKnownServers(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^https:\/\/\S+$/.test(l))
    .slice(0, MAX_KNOWN_SERVERS);
}

function writeKnownServers(file: string, servers: string[]): void {
  if (servers.length === 0) return; // the Endpoints were empty for a moment: keep what we knew
  const text = `${servers.join("\n")}\n`;
  if (existsSync(file) && readFileSync(file, "utf8") === text) return;
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
