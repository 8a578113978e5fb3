// A real control plane for integration tests: etcd (Debian etcd-server) + an apiserver on a free
// loopback port, and typed clients over gRPC. Everything is torn down by stop().
import type { Transport } from "@connectrpc/connect";
import type { ApiObject } from "../../internal/api/registry.ts";
import { startApiServer, type ApiServer, type ApiServerOptions } from "../../internal/apiserver/server.ts";
import { createResourceClient, type ResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import type { Store } from "../../internal/storage/store.ts";
import { startEtcd, type EtcdServer } from "./etcd.ts";

export interface ControlPlane {
  etcd: EtcdServer;
  store: Store;
  server: ApiServer;
  transport: Transport;
  client<T extends ApiObject = any>(kind: string): ResourceClient<T>;
  /** Stops and starts the apiserver on the same port and etcd (clients keep their URL). */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export async function startControlPlane(opts: Partial<ApiServerOptions> = {}): Promise<ControlPlane> {
  const etcd = await startEtcd();
  const store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/skiff-test" });
  let server = await startApiServer({ heartbeatMs: 1000, ...opts, store, port: 0 });
  const transport = createApiTransport(server.url);
  return {
    etcd,
    store,
    get server() {
      return server;
    },
    transport,
    client: (kind) => createResourceClient(transport, kind),
    async restartApiServer() {
      const port = server.port;
      await server.close();
      server = await startApiServer({ heartbeatMs: 1000, ...opts, store, port });
    },
    async stop() {
      await server.close();
      await store.close();
      await etcd.stop();
    },
  };
}
