// The agent's own port (Kubernetes' kubelet port, 10250): AgentService over gRPC and Connect on
// HTTP/2 with TLS, plus GET /healthz. Only the apiserver may call it: the TLS handshake requires a
// client certificate from `clientCa` (no certificate, or another CA: the handshake fails), and
// every request must come from the apiserver's identity (subject CN system:apiserver); any other
// certificate of that CA gets PERMISSION_DENIED (/healthz: 403). Users read logs through the
// apiserver's PodService.Log, which authorizes them and dials this port.
import type { ConnectRouter, Interceptor, ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type net from "node:net";
import type tls from "node:tls";
import { AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";

/** The client identity the agent's port accepts: the apiserver's (the PKI's apiserver-client, Kubernetes' kube-apiserver-kubelet-client idea). */
export const APISERVER_CLIENT_CN = "system:apiserver";

/** What the agent's port serves with: its certificate (from the cluster PKI) and the CA its clients must come from (PEM). */
export interface AgentServingTls {
  cert: string;
  key: string;
  clientCa: string;
}

export interface AgentServer {
  host: string;
  port: number;
  /** New serving material (a renewed certificate) for connections from now on. */
  setTls(tls: AgentServingTls): void;
  close(): Promise<void>;
}

export interface AgentServerOptions {
  host: string;
  port: number;
  service: ServiceImpl<typeof AgentService>;
  /** The agent's serving certificate and the CA the apiserver's client certificate comes from (PEM). */
  tls: AgentServingTls;
}

const peerKey = createContextKey<string>("", { description: "the client certificate's subject CN" });

/** The subject CN of the connection's (already verified) client certificate, or "". */
function peerName(socket: net.Socket | tls.TLSSocket): string {
  const cn = (socket as tls.TLSSocket).getPeerCertificate?.()?.subject?.CN;
  return typeof cn === "string" ? cn : "";
}

function refusal(who: string): string {
  return `this port serves the apiserver only (client certificate CN ${APISERVER_CLIENT_CN}), not "${who}": read logs through the apiserver (skiffctl logs)`;
}

const onlyTheApiserver: Interceptor = (next) => async (req) => {
  const who = req.contextValues.get(peerKey);
  if (who !== APISERVER_CLIENT_CN) throw new ConnectError(refusal(who), Code.PermissionDenied);
  return next(req);
};

export async function startAgentServer(opts: AgentServerOptions): Promise<AgentServer> {
  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    routes: (router: ConnectRouter) => router.service(AgentService, opts.service),
    interceptors: [onlyTheApiserver],
    contextValues: (req) => createContextValues().set(peerKey, peerName(req.socket)),
    shutdownSignal: shutdown.signal,
  });
  const server = http2.createSecureServer(
    { cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" },
    (req, res) => {
      if (req.url === "/healthz") {
        const who = peerName(req.socket);
        res.writeHead(who === APISERVER_CLIENT_CN ? 200 : 403, { "content-type": "text/plain" });
        res.end(who === APISERVER_CLIENT_CN ? "ok\n" : `${refusal(who)}\n`);
        return;
      }
      handler(req, res);
    },
  );
  // A failed handshake (no or an untrusted client certificate) is the client's problem, not ours.
  server.on("tlsClientError", () => {});
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: opts.host,
    port,
    setTls(tls) {
      server.setSecureContext({ cert: tls.cert, key: tls.key, ca: tls.clientCa, minVersion: "TLSv1.2" });
    },
    async close() {
      shutdown.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close();
        setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, 1000).unref();
      });
    },
  };
}
