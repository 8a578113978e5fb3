// How clients reach the apiserver: plain gRPC over one HTTP/2 connection (h2c), with pings so
// that long watches survive idle periods and a dead server is noticed (grpc-transport.ts).
import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "./grpc-transport.ts";

export function createApiTransport(baseUrl: string): Transport {
  return createGrpcTransport({
    baseUrl,
    pingIntervalMs: 10_000,
    pingTimeoutMs: 10_000,
    idleConnectionTimeoutMs: 60_000,
  });
}
