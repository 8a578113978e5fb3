// The agent's own port (Kubernetes' kubelet port, 10250): AgentService over Connect, gRPC and
// gRPC-Web on HTTP/2 without TLS (h2c), plus GET /healthz. Clients need an HTTP/2 transport
// (connect-node's createGrpcTransport, or createConnectTransport with httpVersion "2").
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type net from "node:net";
import { AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";

export interface AgentServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startAgentServer(opts: { host: string; port: number; service: ServiceImpl<typeof AgentService> }): Promise<AgentServer> {
  const shutdown = new AbortController();
  const handler = connectNodeAdapter({
    routes: (router: ConnectRouter) => router.service(AgentService, opts.service),
    shutdownSignal: shutdown.signal,
  });
  const server = http2.createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok\n");
      return;
    }
    handler(req, res);
  });
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
