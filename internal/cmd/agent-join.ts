// `skiff agent --server URL --token K10…`: the agent's credentials come from joining (internal/join)
// instead of files, and are renewed while it runs.
import net from "node:net";
import { networkInterfaces } from "node:os";
import type { AgentServingTls } from "../agent/server.ts";
import { createServerTransport } from "../client/transport.ts";
import type { GrpcTransport } from "../client/grpc-transport.ts";
import { joinCluster } from "../join/agent-join.ts";
import { nodeSecret, type NodeCredentials } from "../join/credentials.ts";
import { NODE_IDENTITY_ANNOTATION, nodeIdentityOf } from "../join/node-identity.ts";
import { startCertificateRenewer, type CertificateRenewer } from "../join/renewal.ts";

export const JOIN_TOKEN_PREFIX = "K10";

export interface JoinedConnection {
  transport: GrpcTransport;
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
  let creds = await joinCluster({ server: o.server, token: o.token, nodeName: o.nodeName, dataDir: o.dataDir, servingSans: o.sans, log: o.log });
  const transport = createServerTransport(o.server, { ca: creds.ca, cert: creds.cert, key: creds.key });
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
          transport.updateTls({ ca: next.ca, cert: next.cert, key: next.key });
          reloadServing(servingTls(next));
        },
      }),
  };
}
