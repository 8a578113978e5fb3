// A real control plane for integration tests: etcd (Debian etcd-server) over TLS + an apiserver
// on a free loopback port serving TLS with the test PKI, and typed clients over gRPC as the admin.
// Everything is torn down by stop().
import type { Transport } from "@connectrpc/connect";
import type { ApiObject } from "../../internal/api/registry.ts";
import { startApiServer, type ApiServer, type ApiServerOptions } from "../../internal/apiserver/server.ts";
import { createResourceClient, type ResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { testPki, type TestPki } from "../../internal/pki/testing.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import type { Store } from "../../internal/storage/store.ts";
import { startEtcd, startEtcdCluster, type EtcdCluster, type EtcdServer } from "./etcd.ts";

export interface ControlPlane {
  /** The etcd (with etcdMembers > 1: its first member; kill/restart act on that member). */
  etcd: EtcdServer;
  /** With etcdMembers > 1: the whole etcd cluster (the store and the apiserver use every member). */
  etcdCluster?: EtcdCluster;
  store: Store;
  server: ApiServer;
  /** The test PKI (identities, the CA, broken credentials for tests). */
  pki: TestPki;
  /** The admin's transport (system:masters). */
  transport: Transport;
  client<T extends ApiObject = any>(kind: string): ResourceClient<T>;
  /**
   * Stops and starts the apiserver on the same port and etcd (clients keep their URL);
   * `whileDown` runs in between (e.g. restoring etcd from a snapshot).
   */
  restartApiServer(whileDown?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** etcd members (default 1): more start a cluster with peer TLS (startEtcdCluster). */
  etcdMembers?: number;
}

/** The first member of a cluster seen as an EtcdServer (metrics, health, kill -9 of that member); stop() stops the cluster. */
function firstMemberOf(cluster: EtcdCluster): EtcdServer {
  const m = cluster.members[0];
  return {
    endpoint: m.endpoint,
    tls: cluster.tls,
    metricsUrl: m.healthUrl.replace(/\/health$/, "/metrics"),
    healthUrl: m.healthUrl,
    dataDir: m.dataDir,
    memberName: m.name,
    peerUrl: m.peerUrl,
    stop: () => cluster.stop(),
    kill: () => cluster.kill9(m),
    restart: () => cluster.restart(m),
  };
}

export async function startControlPlane(opts: Partial<ApiServerOptions> = {}, cpOpts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const pki = await testPki();
  const etcdCluster = (cpOpts.etcdMembers ?? 1) > 1 ? await startEtcdCluster({ size: cpOpts.etcdMembers }) : undefined;
  const etcd = etcdCluster ? firstMemberOf(etcdCluster) : await startEtcd();
  const store = createEtcdStore({ endpoints: etcdCluster?.endpoints ?? [etcd.endpoint], prefix: "/skiff-test", tls: etcd.tls });
  // ServiceAccount tokens are signed with the PKI's sa.key, as `skiff up` does.
  // kubeletClient: the apiserver reads logs from agents as system:apiserver (agents serve testPki().agentServing certificates).
  const base = { heartbeatMs: 1000, tls: pki.serving, serviceAccountSigningKey: pki.serviceAccountKey.privateKey, kubeletClient: pki.kubeletClient };
  let server = await startApiServer({ ...base, ...opts, store, port: 0 });
  const transport = createApiTransport(server.url, pki.adminCredentials);
  return {
    etcd,
    etcdCluster,
    store,
    pki,
    get server() {
      return server;
    },
    transport,
    client: (kind) => createResourceClient(transport, kind),
    async restartApiServer(whileDown) {
      const port = server.port;
      await server.close();
      await whileDown?.();
      server = await startApiServer({ ...base, ...opts, store, port });
    },
    async stop() {
      await server.close();
      await store.close();
      await etcd.stop();
    },
  };
}
