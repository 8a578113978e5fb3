// Service ClusterIP and NodePort allocation through the generic resource operations, on the
// memory store: what a user creating, changing and deleting Services sees.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { kindByName } from "../api/registry.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { encode, keyFor } from "./objects.ts";
import { createResourceOps, type ResourceOps } from "./resources.ts";
import { createServiceAllocator, parsePortRange, parseServiceCidr, type ServiceAllocator } from "./service-alloc.ts";

const kind = kindByName("Service")!;
let store: Store;
let ops: ResourceOps;
let alloc: ServiceAllocator;

function setUp(serviceCidr = "10.96.0.0/24", nodePortRange = "30000-30009") {
  store = createMemoryStore();
  alloc = createServiceAllocator({ store, serviceKind: kind, serviceCidr, nodePortRange });
  ops = createResourceOps(kind, { store, caches: new Map(), hooks: alloc.hooks });
}
beforeEach(() => setUp());

type Spec = Partial<Omit<Service["spec"] & object, "ports">> & { ports?: Record<string, unknown>[] };
function svc(name: string, spec: Spec = {}): Service {
  return create(ServiceSchema, {
    metadata: { name, namespace: "default" },
    spec: { selector: { app: name }, ports: [{ port: 80, targetPort: "8080" }], ...spec } as any,
  });
}
const make = async (name: string, spec: Spec = {}) => (await ops.create(svc(name, spec))) as Service;

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

describe("ranges", () => {
  it("parses the CIDR without its network and broadcast addresses, and port ranges", () => {
    expect(parseServiceCidr("10.96.0.0/12")).toMatchObject({ first: 0x0a600001, last: 0x0a6ffffe });
    expect(parsePortRange("30000-32767")).toMatchObject({ first: 30000, last: 32767 });
    expect(() => parseServiceCidr("10.96.0.1/12")).toThrow(/host bits set.*10\.96\.0\.0\/12/);
    expect(() => parseServiceCidr("fd00::/108")).toThrow(/IPv4 CIDR/);
    expect(() => parsePortRange("32767-30000")).toThrow(/FIRST-LAST/);
    expect(() => parsePortRange("0-10")).toThrow(/FIRST-LAST/);
  });
});

describe("ClusterIP", () => {
  it("allocates a distinct address from the range to every Service, and none to headless or ExternalName ones", async () => {
    const a = await make("a");
    const b = await make("b");
    expect(a.spec!.clusterIp).toMatch(/^10\.96\.0\.\d+$/);
    expect(a.spec!.clusterIps).toEqual([a.spec!.clusterIp]);
    expect(b.spec!.clusterIp).not.toBe(a.spec!.clusterIp);
    const headless = await make("h", { clusterIp: "None", ports: [] });
    expect(headless.spec!.clusterIp).toBe("None");
    expect(headless.spec!.clusterIps).toEqual(["None"]);
    const ext = await make("e", { type: "ExternalName", externalName: "example.org", ports: [] });
    expect(ext.spec!.clusterIp).toBe("");
  });

  it("gives every address exactly once under concurrent creates, then says the range is full", async () => {
    setUp("10.96.0.0/27"); // 30 usable addresses
    const created = await Promise.all(Array.from({ length: 30 }, (_, i) => make(`s${i}`)));
    const ips = new Set(created.map((s) => s.spec!.clusterIp));
    expect(ips.size).toBe(30);
    const err = await failure(make("one-too-many"));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toContain("10.96.0.0/27");
    await expect(ops.get("default", "one-too-many")).rejects.toThrow(/not found/);
  });

  it("in a large range too, where the first picks skip reading what is held", async () => {
    setUp("10.96.0.0/12", "30000-32767");
    const created = await Promise.all(Array.from({ length: 200 }, (_, i) => make(`s${i}`, { type: "NodePort" })));
    expect(new Set(created.map((s) => s.spec!.clusterIp)).size).toBe(200);
    expect(new Set(created.map((s) => s.spec!.ports[0].nodePort)).size).toBe(200);
    // A value that is held is not handed out again, however it is picked.
    const all = new Set(created.map((s) => s.spec!.clusterIp));
    for (let i = 0; i < 50; i++) expect(all.has((await make(`more${i}`)).spec!.clusterIp)).toBe(false);
  });

  it("releases the address on delete so another Service can have it", async () => {
    setUp("10.96.0.0/30"); // 2 usable
    const a = await make("a");
    await make("b");
    expect((await failure(make("c"))).code).toBe(Code.ResourceExhausted);
    await ops.delete("default", "a");
    const c = await make("c");
    expect(c.spec!.clusterIp).toBe(a.spec!.clusterIp);
  });

  it("honours a requested address, and refuses a taken or out-of-range one with its field path", async () => {
    const a = await make("a", { clusterIp: "10.96.0.77" });
    expect(a.spec!.clusterIp).toBe("10.96.0.77");
    const taken = await failure(make("b", { clusterIp: "10.96.0.77" }));
    expect(taken.code).toBe(Code.AlreadyExists);
    expect(taken.message).toContain("spec.clusterIP");
    expect(taken.message).toContain("default/a");
    const outside = await failure(make("c", { clusterIp: "10.97.0.1" }));
    expect(outside.code).toBe(Code.InvalidArgument);
    expect(outside.message).toMatch(/spec\.clusterIP: 10\.97\.0\.1 is not in the valid range.*10\.96\.0\.0\/24/);
    const broadcast = await failure(make("d", { clusterIp: "10.96.0.255" }));
    expect(broadcast.code).toBe(Code.InvalidArgument);
    const garbage = await failure(make("e", { clusterIp: "10.96.0" }));
    expect(garbage.code).toBe(Code.InvalidArgument);
    expect(garbage.message).toContain("spec.clusterIP");
    for (const n of ["b", "c", "d", "e"]) await expect(ops.get("default", n)).rejects.toThrow(/not found/);
  });

  it("leaks nothing when the create fails after choosing", async () => {
    await make("a", { clusterIp: "10.96.0.8" }); // not at random: it could be the one asked for below
    // Same name again: the object write fails, and with it the claim on the requested address.
    expect((await failure(make("a", { clusterIp: "10.96.0.9" }))).code).toBe(Code.AlreadyExists);
    expect((await make("b", { clusterIp: "10.96.0.9" })).spec!.clusterIp).toBe("10.96.0.9");
  });

  it("keeps the address on updates that leave clusterIP out, and refuses to change it", async () => {
    const a = await make("a", { clusterIp: "10.96.0.100" }); // not at random: it could be the one changed to below
    const edited = svc("a", { ports: [{ port: 81, targetPort: "81" }] });
    edited.metadata!.resourceVersion = a.metadata!.resourceVersion;
    const updated = (await ops.update(edited)) as Service;
    expect(updated.spec!.clusterIp).toBe(a.spec!.clusterIp);
    expect(updated.spec!.ports[0].port).toBe(81);
    const changed = svc("a", { clusterIp: "10.96.0.200" });
    const err = await failure(ops.update(changed));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toMatch(/spec\.clusterIP: field is immutable/);
  });

  it("releases the address when a Service becomes ExternalName and allocates one when it stops being one", async () => {
    setUp("10.96.0.0/30");
    const a = await make("a");
    await make("b");
    const ext = svc("a", { type: "ExternalName", externalName: "example.org", clusterIp: a.spec!.clusterIp, ports: [] });
    expect(((await ops.update(ext)) as Service).spec!.clusterIp).toBe("");
    expect((await make("c")).spec!.clusterIp).toBe(a.spec!.clusterIp);
    await ops.delete("default", "c");
    expect(((await ops.update(svc("a"))) as Service).spec!.clusterIp).toBe(a.spec!.clusterIp);
  });

  it("a dry run shows the address but claims nothing", async () => {
    setUp("10.96.0.0/30");
    const dry = (await ops.create(svc("a"), true)) as Service;
    expect(dry.spec!.clusterIp).toMatch(/^10\.96\.0\.[12]$/);
    await make("b");
    await make("c");
  });
});

describe("NodePort", () => {
  it("allocates a port per service port from the range, shared by TCP and UDP of the same port", async () => {
    const s = await make("dns", {
      type: "NodePort",
      ports: [
        { name: "dns", port: 53, protocol: "UDP", targetPort: "53" },
        { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: "53" },
        { name: "metrics", port: 9153, targetPort: "9153" },
      ],
    });
    const [udp, tcp, metrics] = s.spec!.ports.map((p) => p.nodePort);
    expect(udp).toBeGreaterThanOrEqual(30000);
    expect(udp).toBeLessThanOrEqual(30009);
    expect(tcp).toBe(udp);
    expect(metrics).not.toBe(udp);
    expect(s.spec!.clusterIp).not.toBe("");
  });

  it("never gives a port twice under concurrent creates", async () => {
    const made = await Promise.all(Array.from({ length: 10 }, (_, i) => make(`np${i}`, { type: "NodePort" })));
    expect(new Set(made.map((s) => s.spec!.ports[0].nodePort)).size).toBe(10);
    const err = await failure(make("full", { type: "NodePort" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.message).toContain("spec.ports[0].nodePort");
  });

  it("honours a requested port and refuses a taken or out-of-range one", async () => {
    expect((await make("a", { type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 30005 }] })).spec!.ports[0].nodePort).toBe(30005);
    const taken = await failure(make("b", { type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 30005 }] }));
    expect(taken.code).toBe(Code.AlreadyExists);
    expect(taken.message).toContain("spec.ports[0].nodePort");
    const outside = await failure(make("c", { type: "NodePort", ports: [{ port: 80, targetPort: "80", nodePort: 8080 }] }));
    expect(outside.code).toBe(Code.InvalidArgument);
    expect(outside.message).toMatch(/spec\.ports\[0\]\.nodePort: 8080 is not in the valid range.*30000-30009/);
    const onClusterIP = await failure(make("d", { ports: [{ port: 80, targetPort: "80", nodePort: 30001 }] }));
    expect(onClusterIP.code).toBe(Code.InvalidArgument);
    expect(onClusterIP.message).toContain("spec.ports[0].nodePort: may not be set for type ClusterIP");
  });

  it("ClusterIP → NodePort allocates ports; NodePort → ClusterIP releases them and keeps the address", async () => {
    setUp("10.96.0.0/24", "30000-30000");
    const a = await make("a");
    const np = (await ops.update(svc("a", { type: "NodePort" }))) as Service;
    expect(np.spec!.ports[0].nodePort).toBe(30000);
    expect(np.spec!.clusterIp).toBe(a.spec!.clusterIp);
    expect((await failure(make("b", { type: "NodePort" }))).code).toBe(Code.ResourceExhausted);
    // Sent back as read, with the now meaningless nodePort: it is dropped, like Kubernetes does.
    const back = svc("a", { type: "ClusterIP", ports: [{ port: 80, targetPort: "8080", nodePort: 30000 }] });
    const cip = (await ops.update(back)) as Service;
    expect(cip.spec!.ports[0].nodePort).toBe(0);
    expect((await make("b", { type: "NodePort" })).spec!.ports[0].nodePort).toBe(30000);
  });

  it("keeps allocated ports on updates that leave nodePort out, and releases them on delete", async () => {
    setUp("10.96.0.0/24", "30000-30001");
    const a = await make("a", { type: "NodePort" });
    const kept = (await ops.update(svc("a", { type: "NodePort", selector: { app: "other" } }))) as Service;
    expect(kept.spec!.ports[0].nodePort).toBe(a.spec!.ports[0].nodePort);
    await make("b", { type: "NodePort" });
    await ops.delete("default", "a");
    expect((await make("c", { type: "NodePort" })).spec!.ports[0].nodePort).toBe(a.spec!.ports[0].nodePort);
  });
});

describe("ports and type validation", () => {
  it("reports every bad port with its field path and writes nothing", async () => {
    const err = await failure(
      make("bad", {
        ports: [
          { port: 80, targetPort: "8080" },
          { name: "a", port: 80, targetPort: "Not_A_Name" },
          { name: "b", port: 81, protocol: "SCTP", targetPort: "70000" },
          { name: "c", port: 80, protocol: "TCP", targetPort: "http" },
        ],
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("spec.ports[0].name: required when there is more than one port");
    expect(err.message).toContain("spec.ports[1].targetPort");
    expect(err.message).toContain("spec.ports[2].protocol: SCTP is not supported");
    expect(err.message).toContain("spec.ports[2].targetPort: must be a port number from 1 to 65535");
    expect(err.message).toContain("spec.ports[3]: duplicate port 80/TCP");
    await expect(ops.get("default", "bad")).rejects.toThrow(/not found/);
  });

  it("accepts a named targetPort and the same port over TCP and UDP", async () => {
    const s = await make("ok", { ports: [{ name: "web", port: 80, targetPort: "http" }, { name: "dns", port: 80, protocol: "UDP", targetPort: "53" }] });
    expect(s.spec!.ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`)).toEqual(["80/TCP->http", "80/UDP->53"]);
  });

  it("wants ports except for headless Services, and no headless NodePort", async () => {
    expect((await failure(make("noports", { ports: [] }))).message).toContain("spec.ports: required");
    const err = await failure(make("hnp", { type: "NodePort", clusterIp: "None" }));
    expect(err.message).toContain('spec.clusterIP: may not be "None" for type NodePort');
  });
});

describe("repair", () => {
  it("claims the values of Services that hold no keys, gives an address to those without one, and removes orphans", async () => {
    // Written straight to storage, as an older apiserver (or another range) would have left them.
    const legacy = svc("legacy", { clusterIp: "10.96.0.5", clusterIps: ["10.96.0.5"] });
    legacy.metadata!.uid = "u-legacy";
    await store.create(keyFor(kind, "default", "legacy"), encode(kind, legacy));
    const bare = svc("bare");
    bare.metadata!.uid = "u-bare";
    await store.create(keyFor(kind, "default", "bare"), encode(kind, bare));
    await store.create("/registry/serviceallocations/clusterips/10.96.0.6", new TextEncoder().encode(JSON.stringify({ namespace: "default", name: "gone", uid: "u-gone" })));

    const r = await alloc.repair();
    expect(r.created).toEqual(["/registry/serviceallocations/clusterips/10.96.0.5"]);
    expect(r.removed).toEqual(["/registry/serviceallocations/clusterips/10.96.0.6"]);
    expect(r.needIP.map((s) => s.metadata!.name)).toEqual(["bare"]);
    // The orphan's address is free again (asked for before "bare" picks one at random: it might pick it).
    expect((await make("y", { clusterIp: "10.96.0.6" })).spec!.clusterIp).toBe("10.96.0.6");
    expect((await failure(make("x", { clusterIp: "10.96.0.5" }))).code).toBe(Code.AlreadyExists);
    for (const s of r.needIP) await ops.update(s);
    expect(((await ops.get("default", "bare")) as Service).spec!.clusterIp).toMatch(/^10\.96\.0\./);
  });
});
