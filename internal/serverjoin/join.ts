// The joining server's side (`skiff server --server URL --token K10…`, role server):
//
//   GET /cacerts untrusted → sha256 == token's? (internal/join: else stop, the secret never leaves)
//   → JoinServer with Bearer <id>.<secret>, TLS verified against that CA → the shared keys and
//   etcd's --initial-cluster; the caller writes the keys into its PKI directory and starts etcd
//   with --initial-cluster-state existing.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ServerService, type JoinServerResponse } from "../../gen/skiff/v1alpha1/server_service_pb.js";
import { createServerTransport } from "../client/transport.ts";
import { verifiedCa } from "../join/agent-join.ts";
import { bearerOf, caHashOf, parseJoinToken } from "../join/token.ts";

export interface ServerJoinOptions {
  server: string;
  /** K10<hash>::<id>.<secret> of role server. */
  token: string;
  serverName: string;
  /** The new etcd member's peer URL (https://IP:PORT). */
  peerUrl: string;
}

export async function joinAsServer(o: ServerJoinOptions): Promise<JoinServerResponse> {
  const token = parseJoinToken(o.token);
  const ca = await verifiedCa(o.server, token);
  const transport = createServerTransport(o.server, { ca, token: bearerOf(token) });
  try {
    const client = createClient(ServerService, transport);
    // UNAVAILABLE: etcd was not ready for a member (or the server not reachable a moment); the join
    // is safe to repeat (an added member that never started is reused for the same peer URL).
    let res;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await client.joinServer({ serverName: o.serverName, peerUrl: o.peerUrl }, { timeoutMs: 60_000 });
        break;
      } catch (err) {
        if (ConnectError.from(err).code !== Code.Unavailable || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 2000 * attempt));
      }
    }
    if (caHashOf(res.caCertificate) !== token.caHash) throw new Error("the apiserver answered with another CA than the token names");
    if (!res.caKey || !res.etcdCaCertificate || !res.etcdCaKey || !res.serviceAccountKey || !res.initialCluster) throw new Error("the apiserver's join answer lacks the cluster's keys");
    return res;
  } finally {
    transport.close();
  }
}
