// The observability endpoints every component serves: /metrics (Prometheus text; authenticated,
// then authorized by the apiserver's RBAC, see access.ts) and /healthz, /livez, /readyz (open;
// `?verbose` lists the checks). The handler plugs into a port a component already has (the
// agent's); startMetricsServer gives the scheduler and controller-manager a TLS port of their own.
import http from "node:http";
import type http2 from "node:http2";
import https from "node:https";
import type net from "node:net";
import type { TLSSocket } from "node:tls";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { MetricsAccess } from "./access.ts";
import type { HealthChecks } from "./health.ts";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

export interface ObservabilityOptions {
  registry: Registry;
  health: HealthChecks;
  access: MetricsAccess;
  log?: Logger;
}

const HEALTH_PATHS = new Set(["/healthz", "/livez", "/readyz"]);

/** Answers the observability paths; returns false for any other path (left to the caller). */
export function createObservabilityHandler(opts: ObservabilityOptions): (req: Request, res: Response) => boolean {
  const reply = (res: Response, status: number, body: string, type = "text/plain; charset=utf-8") => {
    (res as http.ServerResponse).writeHead(status, { "content-type": type, "cache-control": "no-store" });
    res.end(body);
  };
  return (req, res) => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (HEALTH_PATHS.has(path)) {
      const verbose = q >= 0 && new URLSearchParams(url.slice(q + 1)).has("verbose");
      void opts.health.report(path as "/healthz", verbose).then((r) => reply(res, r.status, r.body));
      return true;
    }
    if (path !== "/metrics") return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      reply(res, 405, "only GET reads /metrics\n");
      return true;
    }
    const peer = { key: "stream" in req ? req.stream.session! : req.socket, socket: req.socket as TLSSocket };
    void (async () => {
      try {
        const a = await opts.access.check(peer, req.headers.authorization, path);
        if (!a.allowed) return reply(res, a.status, `${a.message}\n`);
        reply(res, 200, await opts.registry.metrics(), opts.registry.contentType);
      } catch (err) {
        opts.log?.warn({ err: String(err) }, "could not answer /metrics");
        reply(res, 503, "could not check access with the apiserver; try again shortly\n");
      }
    })();
    return true;
  };
}

export interface MetricsServerOptions extends ObservabilityOptions {
  host: string;
  port: number;
  /** Serving certificate and key, and the CA client certificates must come from (PEM). */
  tls: { cert: string; key: string; clientCa: string };
}

export interface MetricsServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** An HTTPS port with only the observability paths (Kubernetes' --secure-port of the scheduler and controller-manager). */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const handle = createObservabilityHandler(opts);
  // A client certificate is asked for, not required: bearer tokens work too, and health is open.
  const server = https.createServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2" }, (req, res) => {
    if (!handle(req, res)) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: this port serves /metrics, /healthz, /livez and /readyz\n");
    }
  });
  server.on("tlsClientError", () => {});
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  opts.log?.info({ address: `${opts.host}:${port}` }, "serving /metrics and health");
  return {
    host: opts.host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
