// How clients reach the apiserver: plain gRPC over one TLS HTTP/2 connection, with the caller's
// credentials (client certificate or bearer token, optionally impersonating), and pings so that
// long watches survive idle periods and a dead server is noticed (grpc-transport.ts). Given
// several servers, or asked to discover them, calls move between apiservers (failover.ts).
import type { Transport } from "@connectrpc/connect";
import { credentialHeaders, type ApiCredentials } from "./credentials.ts";
import { createFailoverTransport, type FailoverOptions } from "./failover.ts";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.ts";

export type { ApiCredentials } from "./credentials.ts";

export interface ApiTransportOptions {
  /** Learn the other apiservers from the `kubernetes` Endpoints and move to them when one dies. */
  discover?: boolean;
  onMove?: FailoverOptions["onMove"];
}

/** A transport to one server whose TLS credentials can be replaced (a joined agent renews its certificate). */
export function createServerTransport(baseUrl: string, credentials: ApiCredentials): GrpcTransport {
  return createGrpcTransport({
    baseUrl,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 60_000,
    tls: { ca: credentials.ca, cert: credentials.cert, key: credentials.key },
    headers: credentialHeaders(credentials),
  });
}

/** One server URL, or several (each tried in turn: the first that answers is used until it fails). */
export function createApiTransport(servers: string | string[], credentials: ApiCredentials, opts: ApiTransportOptions = {}): Transport {
  const list = typeof servers === "string" ? [servers] : servers;
  if (list.length === 1 && !opts.discover) return createServerTransport(list[0], credentials);
  return createFailoverTransport({ servers: list, connect: (url) => createServerTransport(url, credentials), discover: opts.discover ?? false, onMove: opts.onMove });
}
