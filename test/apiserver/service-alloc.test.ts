// Service ClusterIP and NodePort allocation on a real etcd, with two apiservers writing at once:
// one in this process, one a `skiff apiserver` process on the same etcd and key prefix.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeEach, beforeAll, describe, expect, it } from "vitest";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import type { ResourceClient } from "../../internal/client/resource-client.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { namespace } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { freePort } from "../harness/ports.ts";
import { startGuardedProcess, type GuardedProcess } from "../harness/process.ts";
import { apiserverTlsArgs, getTls } from "../harness/pki.ts";

// 30 addresses and 20 ports: small enough to fill.
const CIDR = "10.100.0.0/27";
const PORTS = "31000-31019";

let cp: ControlPlane;
let other: GuardedProcess | undefined;
let a: ResourceClient<Service>;
let b: ResourceClient<Service>;

beforeAll(async () => {
  cp = await startControlPlane({ serviceCidr: CIDR, nodePortRange: PORTS });
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  // Guarded: it dies with this test process however that ends.
  other = await startGuardedProcess({
    command: process.execPath,
    args: ["cmd/skiff.ts", "apiserver", "--listen", `127.0.0.1:${port}`, "--etcd-servers", cp.etcd.endpoint, "--etcd-prefix", "/skiff-test", ...apiserverTlsArgs(cp.pki),
      "--service-cluster-ip-range", CIDR, "--service-node-port-range", PORTS],
    env: { ...process.env, SKIFF_LOG_FORMAT: "json", SKIFF_LOG_LEVEL: "warn" },
    name: "skiff apiserver",
    ready: async () => (await getTls(`${url}/readyz`, { ca: cp.pki.ca.cert }).catch(() => undefined))?.status === 200,
    timeoutMs: 20_000,
  });
  a = cp.client<Service>("Service");
  b = createResourceClient<Service>(createApiTransport(url, cp.pki.adminCredentials), "Service");
});
afterAll(async () => {
  await other?.stop();
  await cp?.stop();
});

function svc(name: string, spec: object = {}, ns = "default"): Service {
  return create(ServiceSchema, {
    metadata: { name, namespace: ns },
    spec: { selector: { app: name }, ports: [{ port: 80, targetPort: "8080" }], ...spec } as any,
  });
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}


// Each test starts with the ranges empty (also of the kubernetes Service the apiservers made at start).
beforeEach(async () => {
  for (const s of (await a.list("")).items) await a.delete(s.metadata!.namespace, s.metadata!.name);
});

describe("two apiservers on one etcd", () => {
  it("never give the same ClusterIP or NodePort twice under many concurrent creates, then report the range full", async () => {
    // 30 Services, half through each apiserver, all at once; 20 of them NodePort.
    const made = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).create(svc(`s${i}`, i < 20 ? { type: "NodePort" } : {}))),
    );
    const ips = made.map((s) => s.spec!.clusterIp);
    expect(new Set(ips).size).toBe(30);
    for (const ip of ips) expect(ip).toMatch(/^10\.100\.0\.([1-9]|[12]\d|30)$/);
    const ports = made.flatMap((s) => s.spec!.ports.map((p) => p.nodePort)).filter((p) => p > 0);
    expect(ports).toHaveLength(20);
    expect(new Set(ports).size).toBe(20);
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(31000);
    // What both servers serve agrees with what they returned.
    const listed = (await b.list("default")).items;
    expect(new Map(listed.map((s) => [s.metadata!.name, s.spec!.clusterIp]))).toEqual(new Map(made.map((s) => [s.metadata!.name, s.spec!.clusterIp])));

    for (const c of [a, b]) {
      const full = await failure(c.create(svc("one-more")));
      expect(full.code).toBe(Code.ResourceExhausted);
      expect(full.message).toContain(CIDR);
    }
  });

  it("release on delete, so the other apiserver can hand the values out again", async () => {
    const s = await a.create(svc("first", { type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 31007 }] }));
    const ip = s.spec!.clusterIp;
    expect((await failure(b.create(svc("second", { clusterIp: ip })))).code).toBe(Code.AlreadyExists);
    await a.delete("default", "first");
    const again = await b.create(svc("second", { clusterIp: ip, type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 31007 }] }));
    expect(again.spec!.clusterIp).toBe(ip);
    expect(again.spec!.ports[0].nodePort).toBe(31007);
  });

  it("release the values of every Service of a deleted namespace", async () => {
    const ns = cp.client("Namespace");
    await ns.create(namespace("shop"));
    const s = await b.create(svc("cart", { type: "NodePort", clusterIp: "10.100.0.20", ports: [{ port: 80, targetPort: "80", nodePort: 31010 }] }, "shop"));
    expect(s.spec!.clusterIp).toBe("10.100.0.20");
    await ns.delete("", "shop");
    await expect.poll(async () => (await ns.list("")).items.some((n: any) => n.metadata!.name === "shop"), { timeout: 20_000 }).toBe(false);
    const reused = await a.create(svc("cart", { type: "NodePort", clusterIp: "10.100.0.20", ports: [{ port: 80, targetPort: "80", nodePort: 31010 }] }));
    expect(reused.spec!.clusterIp).toBe("10.100.0.20");
  });
});

describe("requested values and bad input", () => {
  it("honour a requested address and refuse a taken or out-of-range one with its field path, writing nothing", async () => {
    expect((await a.create(svc("req", { clusterIp: "10.100.0.9" }))).spec!.clusterIp).toBe("10.100.0.9");
    const taken = await failure(b.create(svc("req2", { clusterIp: "10.100.0.9" })));
    expect(taken.code).toBe(Code.AlreadyExists);
    expect(taken.message).toMatch(/spec\.clusterIP: provided value 10\.100\.0\.9 is already allocated to service "default\/req"/);
    const outside = await failure(b.create(svc("req3", { clusterIp: "10.96.0.10" })));
    expect(outside.code).toBe(Code.InvalidArgument);
    expect(outside.message).toContain(`spec.clusterIP: 10.96.0.10 is not in the valid range: the range of valid IPs is ${CIDR}`);
    const port = await failure(a.create(svc("req4", { type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 30080 }] })));
    expect(port.code).toBe(Code.InvalidArgument);
    expect(port.message).toContain(`spec.ports[0].nodePort: 30080 is not in the valid range: the range of valid ports is ${PORTS}`);
    const bad = await failure(a.create(svc("req5", { ports: [{ port: 80, protocol: "SCTP", targetPort: "no_such!" }] })));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain("spec.ports[0].protocol");
    expect(bad.message).toContain("spec.ports[0].targetPort");
    expect((await a.list("default")).items.map((s) => s.metadata!.name)).toEqual(["req"]);
    // The failed creates claimed nothing: all but the one address are still free.
    const rest = await Promise.all(Array.from({ length: 29 }, (_, i) => b.create(svc(`fill${i}`))));
    expect(new Set(rest.map((s) => s.spec!.clusterIp)).size).toBe(29);
  });

  it("keep the address on update and refuse to change it", async () => {
    const s = await a.create(svc("upd"));
    const changed = await b.update(svc("upd", { selector: { app: "other" } }));
    expect(changed.spec!.clusterIp).toBe(s.spec!.clusterIp);
    const err = await failure(b.update(svc("upd", { clusterIp: s.spec!.clusterIp === "10.100.0.1" ? "10.100.0.2" : "10.100.0.1" })));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("spec.clusterIP: field is immutable");
  });
});
