// How clients reach the apiserver: gRPC over HTTP/2 (h2c), with pings so that long watches
// survive idle periods and a dead server is noticed.
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

export function createApiTransport(baseUrl: string): Transport {
  return createGrpcTransport({
    baseUrl,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 60_000,
  });
}
