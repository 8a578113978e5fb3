// Two apiservers on one store with the lease endpoint reconciler: both are published in the
// `kubernetes` Endpoints (one subset per port), an apiserver whose Lease stopped being renewed is
// removed by the other, and a clean shutdown removes its own address at once.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { LeaseSchema, type Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { waitFor } from "../agent/testing.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createApiTransport } from "../client/transport.ts";
import { testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { ENDPOINT_LEASE_LABEL, endpointLeaseName } from "./endpoint-leases.ts";
import { startApiServer, type ApiServer } from "./server.ts";

let a: ApiServer;
let b: ApiServer;
let endpoints: ReturnType<typeof createResourceClient<Endpoints>>;
let leases: ReturnType<typeof createResourceClient<Lease>>;

beforeAll(async () => {
  const pki = await testPki();
  const store = createMemoryStore();
  const opts = { tls: pki.serving, store, port: 0, endpointReconciler: "lease" as const, endpointLeaseIntervalMs: 200, endpointLeaseDurationSeconds: 2 };
  a = await startApiServer({ ...opts, advertiseAddress: "192.0.2.1" });
  b = await startApiServer({ ...opts, advertiseAddress: "192.0.2.2" });
  const t = createApiTransport(a.url, pki.adminCredentials);
  endpoints = createResourceClient<Endpoints>(t, "Endpoints");
  leases = createResourceClient<Lease>(t, "Lease");
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

const published = async () =>
  (await endpoints.get("default", "kubernetes")).subsets.flatMap((s) => s.addresses.map((x) => `${x.ip}:${s.ports[0].port}`)).sort();

it("publishes every live apiserver, drops one whose lease expired, and removes itself on shutdown", async () => {
  const want = [`192.0.2.1:${a.port}`, `192.0.2.2:${b.port}`].sort();
  await waitFor("both apiservers published", async () => JSON.stringify(await published()) === JSON.stringify(want), 30_000);

  // An apiserver that died without a word: its lease was last renewed long ago.
  await leases.create(
    create(LeaseSchema, {
      metadata: { name: endpointLeaseName("192.0.2.9", 6443), namespace: "skiff-system", labels: { [ENDPOINT_LEASE_LABEL]: "true" } },
      spec: { holderIdentity: "192.0.2.9:6443", leaseDurationSeconds: 2, renewTime: timestampFromDate(new Date(Date.now() - 60_000)) },
    }),
  );
  await waitFor("the dead apiserver's lease removed", async () => (await leases.list("skiff-system", { labelSelector: `${ENDPOINT_LEASE_LABEL}=true` })).items.length === 2, 30_000);
  expect(await published()).toEqual(want);

  await b.close();
  expect(await published()).toEqual([`192.0.2.1:${a.port}`]);
});
