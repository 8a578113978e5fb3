// The apiserver as the gRPC conformance tests see it: real etcd, reached through a proxy that can
// freeze (so that a storage call can be made slow at will), and the apiserver on a free loopback
// port, serving TLS with the test PKI; the tests call it as the PKI's admin.
import { startApiServer, type ApiServer, type ApiServerOptions } from "../../internal/apiserver/server.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import type { Store } from "../../internal/storage/store.ts";
import { testPki } from "../../internal/pki/testing.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { LOOPBACK } from "../harness/ports.ts";
import { startFreezableProxy, type FreezableProxy } from "./freezable-proxy.ts";

export interface ApiServerUnderTest {
  readonly server: ApiServer;
  /** host:port, as grpc-js takes it. */
  readonly target: string;
  /** Storage calls hang until thawStorage(). */
  freezeStorage(): void;
  thawStorage(): void;
  /** Closes the apiserver (GOAWAY, watches end) and starts a new one on the same port. */
  restart(): Promise<void>;
  /** Closes the apiserver without starting another. */
  close(): Promise<void>;
  stop(): Promise<void>;
}

export async function startApiServerUnderTest(opts: Partial<ApiServerOptions> = {}): Promise<ApiServerUnderTest> {
  const pki = await testPki();
  const etcd: EtcdServer = await startEtcd();
  const link: FreezableProxy = await startFreezableProxy({ host: LOOPBACK, port: Number(new URL(etcd.endpoint).port), tls: true });
  const store: Store = createEtcdStore({ endpoints: [link.url], prefix: "/skiff-grpc-conformance", tls: etcd.tls });
  const start = (port: number) => startApiServer({ heartbeatMs: 1000, tls: pki.serving, ...opts, store, port });
  let server = await start(0);
  let running = true;
  return {
    get server() {
      return server;
    },
    target: `${LOOPBACK}:${server.port}`,
    freezeStorage: () => link.freeze(),
    thawStorage: () => link.thaw(),
    async restart() {
      if (running) await server.close();
      server = await start(server.port);
      running = true;
    },
    async close() {
      running = false;
      await server.close();
    },
    async stop() {
      if (running) await server.close();
      await store.close();
      await link.close();
      await etcd.stop();
    },
  };
}
