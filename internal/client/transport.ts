// How clients reach the apiserver: plain gRPC over one TLS HTTP/2 connection, with the caller's
// credentials (client certificate or bearer token, optionally impersonating), and pings so that
// long watches survive idle periods and a dead server is noticed (grpc-transport.ts).
import { credentialHeaders, type ApiCredentials } from "./credentials.ts";
import { createGrpcTransport, type GrpcTransport } from "./grpc-transport.ts";

export type { ApiCredentials } from "./credentials.ts";

export function createApiTransport(baseUrl: string, credentials: ApiCredentials): GrpcTransport {
  return createGrpcTransport({
    baseUrl,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 60_000,
    tls: { ca: credentials.ca, cert: credentials.cert, key: credentials.key },
    headers: credentialHeaders(credentials),
  });
}
