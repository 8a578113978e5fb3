// The sync loop against an in-process apiserver (memory store), with the kernel replaced by a
// recorder: when the table is written, whole or as a difference, and what a failure does.
import { create } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { startApiServer, type ApiServer } from "../../apiserver/server.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { createMemoryStore } from "../../storage/memory.ts";
import type { UdpFlush } from "./model.ts";
import { createServiceProxy, type ProxyKernel, type ServiceProxy } from "./proxy.ts";
import type { AffinityClient } from "./ruleset.ts";
import { loadedTestPki, testPki } from "../../pki/testing.ts";

let server: ApiServer | undefined;
let proxy: ServiceProxy | undefined;
afterEach(async () => {
  await proxy?.stop();
  await server?.close();
  proxy = server = undefined;
});

function recorder() {
  const k = {
    writes: [] as string[],
    deleted: [] as string[],
    flushes: [] as UdpFlush[],
    failNext: 0,
    kernel: {
      async apply(text: string) {
        if (k.failNext > 0) {
          k.failNext--;
          throw new Error("nft: Could not process rule");
        }
        k.writes.push(text);
      },
      async deleteTable(name: string) {
        k.deleted.push(name);
      },
      async flushConntrack(f: UdpFlush) {
        k.flushes.push(f);
        return "done" as const;
      },
      bridgeNetfilterOn: () => true,
      readAffinity: async () => new Map<string, AffinityClient[]>(),
    } satisfies ProxyKernel,
  };
  return k;
}

const whole = (t: string) => t.startsWith("table ip ");

async function setup(opts: { cleanup?: boolean; minSyncIntervalMs?: number } = {}) {
  server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, initialNamespaces: ["default"] });
  // The apiserver's own kubernetes Service holds 10.96.0.1, an address these tests give their own.
  await server.ops.get("Service")!.delete("default", "kubernetes");
  await server.ops.get("Endpoints")!.delete("default", "kubernetes");
  const transport = createGrpcTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: server.url });
  const k = recorder();
  const services = createResourceClient<Service>(transport, "Service");
  const endpoints = createResourceClient<Endpoints>(transport, "Endpoints");
  const start = () => {
    proxy = createServiceProxy({
      transport,
      log: pino({ level: "silent" }),
      table: "t",
      nodeAddresses: () => ["192.0.2.2"],
      minSyncIntervalMs: opts.minSyncIntervalMs ?? 50,
      resyncMs: 60_000,
      cleanup: opts.cleanup,
      kernel: k.kernel,
    });
    proxy.start();
    return proxy;
  };
  const svc = (name: string, ip: string, protocol = "TCP") =>
    services.create(create(ServiceSchema, { metadata: { name, namespace: "default" }, spec: { clusterIp: ip, ports: [{ port: 80, protocol }] } }));
  const eps = (name: string, ips: string[], protocol = "TCP") =>
    endpoints.create(create(EndpointsSchema, { metadata: { name, namespace: "default" }, subsets: [{ addresses: ips.map((ip) => ({ ip })), ports: [{ port: 8080, protocol }] }] }));
  return { k, start, svc, eps, endpoints };
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("service proxy sync loop", () => {
  it("writes the whole table once, with everything the apiserver holds, after the informers synced", async () => {
    const s = await setup();
    await s.svc("a", "10.96.0.1");
    await s.eps("a", ["10.88.0.5"]);
    await s.svc("b", "10.96.0.2");
    const p = s.start();
    await p.waitForFirstSync();
    expect(s.k.writes).toHaveLength(1);
    expect(whole(s.k.writes[0])).toBe(true);
    expect(s.k.writes[0]).toContain("10.96.0.1 . tcp . 80 : goto svc-default/a/tcp-80");
    expect(s.k.writes[0]).toContain("10.96.0.2 . tcp . 80 : goto reject-no-endpoints");
    expect(p.stats()).toMatchObject({ applied: 1, lastError: undefined });
  });

  it("sends only the difference after a change, and coalesces a burst of changes", async () => {
    const s = await setup({ minSyncIntervalMs: 1000 });
    await s.svc("a", "10.96.0.1");
    await s.eps("a", ["10.88.0.5"]);
    const p = s.start();
    await p.waitForFirstSync();
    // Three changes well inside one interval: one write carries them all.
    await s.svc("b", "10.96.0.2");
    await s.svc("c", "10.96.0.3");
    await s.eps("c", ["10.88.0.7"]);
    const w = await until("a second write", () => s.k.writes[1]);
    await new Promise((r) => setTimeout(r, 1200));
    expect(s.k.writes).toHaveLength(2);
    expect(whole(w)).toBe(false);
    expect(w).toContain("add element ip t no-endpoint-cluster-ips { 10.96.0.2 . tcp . 80 : goto reject-no-endpoints }");
    expect(w).toContain("add chain ip t ep-default/c/tcp-80/10.88.0.7-8080");
    expect(w).not.toContain("default/a/");
  });

  it("writes the whole table when a difference fails (someone changed the table), and retries a failed write", async () => {
    const s = await setup();
    await s.svc("a", "10.96.0.1");
    const p = s.start();
    await p.waitForFirstSync();
    s.k.failNext = 2; // the difference, then the whole table
    await s.eps("a", ["10.88.0.5"]);
    const w = await until("a write after the failures", () => s.k.writes[1], 5000);
    expect(whole(w)).toBe(true);
    expect(w).toContain("dnat to 10.88.0.5:8080");
    expect(p.stats().lastError).toBeUndefined();
  });

  it("flushes UDP conntrack entries of a removed backend", async () => {
    const s = await setup();
    await s.svc("dns", "10.96.0.53", "UDP");
    await s.eps("dns", ["10.88.0.5", "10.88.0.6"], "UDP");
    const p = s.start();
    await p.waitForFirstSync();
    expect(s.k.flushes).toEqual([]); // a new agent does not know what came before
    const cur = await s.endpoints.get("default", "dns");
    cur.subsets[0].addresses.pop();
    await s.endpoints.update(cur);
    const f = await until("a flush", () => s.k.flushes[0]);
    expect(f.removedBackends.map((r) => r.backend)).toEqual([{ ip: "10.88.0.6", port: 8080, local: false }]);
  });

  it("leaves the table when it stops, and removes it with cleanup", async () => {
    const s = await setup();
    await s.start().waitForFirstSync();
    await proxy!.stop();
    expect(s.k.deleted).toEqual([]);
    await server!.close();
    const t = await setup({ cleanup: true });
    await t.start().waitForFirstSync();
    await proxy!.stop();
    expect(t.k.deleted).toEqual(["t"]);
  });
});
