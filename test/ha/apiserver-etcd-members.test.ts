// An apiserver follows etcd's member list (its storage's autoSyncIntervalMs, what `skiff apiserver
// --etcd-sync-interval` and `skiff server` set): started with the only member of a one-member
// cluster, it learns the two members added after its start, so it keeps serving when that first
// member is killed; a member removed later is dropped from its endpoints.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { startApiServer, type ApiServer } from "../../internal/apiserver/server.ts";
import { createResourceClient, type ResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { testPki } from "../../internal/pki/testing.ts";
import { createEtcdStore, type EtcdStore } from "../../internal/storage/etcd.ts";
import { startEtcdCluster, type EtcdCluster } from "../harness/etcd.ts";

let etcd: EtcdCluster;
let store: EtcdStore;
let server: ApiServer;
let configMaps: ResourceClient<ConfigMap>;

beforeAll(async () => {
  const pki = await testPki();
  etcd = await startEtcdCluster({ size: 1 });
  store = createEtcdStore({ endpoints: [etcd.endpoints[0]], prefix: "/skiff-test", tls: etcd.tls, autoSyncIntervalMs: 500 });
  server = await startApiServer({ store, port: 0, heartbeatMs: 1000, tls: pki.serving, serviceAccountSigningKey: pki.serviceAccountKey.privateKey, kubeletClient: pki.kubeletClient });
  configMaps = createResourceClient<ConfigMap>(createApiTransport(server.url, pki.adminCredentials), "ConfigMap");
}, 120_000);

afterAll(async () => {
  await server?.close();
  await store?.close();
  await etcd?.stop();
});

const configMap = (name: string) => create(ConfigMapSchema, { metadata: { name, namespace: "default" }, data: { at: name } });

/** Retried while etcd elects a leader or the store moves off a dead member (UNAVAILABLE); anything else fails the test. */
async function whenServed<T>(op: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Unavailable || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

it("keeps serving after the member it was started with is killed: it learned the members added after its start", async () => {
  await configMaps.create(configMap("before"));
  const [first] = etcd.members;
  const second = await etcd.addMember();
  const third = await etcd.addMember();
  await waitFor("the apiserver's storage to use the added members", () => store.endpoints().length === 3, 60_000);
  // The member it was given stays first (preferred); the added ones follow.
  expect(store.endpoints()).toEqual([first.endpoint, second.endpoint, third.endpoint]);

  await etcd.kill9(first);
  await whenServed(() => configMaps.create(configMap("after-kill")));
  expect((await configMaps.get("default", "after-kill")).data.at).toBe("after-kill");
  expect((await configMaps.get("default", "before")).data.at).toBe("before");
  // Lists come from the watch cache: its etcd watch moved to a live member too.
  await waitFor("the new ConfigMap in a list", async () => (await configMaps.list("default")).items.some((c) => c.metadata?.name === "after-kill"), 60_000);
  await etcd.restart(first);
}, 300_000);

it("drops a member removed from the cluster", async () => {
  const [first, second, third] = etcd.members;
  await etcd.removeMember(second);
  await waitFor("the removed member to leave the apiserver's endpoints", () => !store.endpoints().includes(second.endpoint), 60_000);
  expect(store.endpoints()).toEqual([first.endpoint, third.endpoint]);
  await whenServed(() => configMaps.create(configMap("after-remove")));
  expect((await configMaps.get("default", "after-remove")).data.at).toBe("after-remove");
}, 300_000);
