// The cluster DNS server answering real UDP and TCP queries on loopback, from Services and
// Endpoints held in maps (what the informers hold in the agent).
import { create } from "@bufbuild/protobuf";
import type { DecodedPacket } from "dns-packet";
import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { startDnsServer, type DnsServer } from "./server.ts";
import { query, sendUdp } from "./testing.ts";
import { createZone, parseClusterDomain } from "./zone.ts";

const services = new Map<string, Service>();
const endpoints = new Map<string, Endpoints>();
const source = {
  service: (ns: string, n: string) => services.get(`${ns}/${n}`),
  endpoints: (ns: string, n: string) => endpoints.get(`${ns}/${n}`),
};

function addService(ns: string, name: string, spec: object) {
  services.set(`${ns}/${name}`, create(ServiceSchema, { metadata: { name, namespace: ns }, spec: spec as any }));
}
function addEndpoints(ns: string, name: string, subsets: object[]) {
  endpoints.set(`${ns}/${name}`, create(EndpointsSchema, { metadata: { name, namespace: ns }, subsets: subsets as any }));
}

let server: DnsServer;
let upstreamServer: DnsServer;
let silent: dgram.Socket;
let forwarding: DnsServer;
let silentForwarding: DnsServer;

beforeAll(async () => {
  addService("default", "web", {
    type: "ClusterIP",
    clusterIp: "10.96.0.10",
    ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: "8080" }, { name: "dns", port: 53, protocol: "UDP", targetPort: "53" }],
  });
  addService("default", "db", { type: "ClusterIP", clusterIp: "None", ports: [{ name: "pg", port: 5432, protocol: "TCP", targetPort: "5432" }] });
  addEndpoints("default", "db", [
    {
      addresses: [{ ip: "10.88.0.5", hostname: "db-0" }, { ip: "10.88.0.6" }],
      notReadyAddresses: [{ ip: "10.88.0.7" }],
      ports: [{ name: "pg", port: 5432, protocol: "TCP" }],
    },
  ]);
  addService("prod", "ext", { type: "ExternalName", externalName: "db.example.org" });
  addService("default", "big", { type: "ClusterIP", clusterIp: "None", ports: [] });
  addEndpoints("default", "big", [{ addresses: Array.from({ length: 60 }, (_, i) => ({ ip: `10.88.1.${i + 1}` })), ports: [] }]);
  addService("default", "pending", { type: "ClusterIP", clusterIp: "None", ports: [] });

  server = await startDnsServer({ zone: createZone("cluster.local", source), host: "127.0.0.1", port: 0 });
  // An "upstream" of our own: authoritative for another domain, on loopback.
  upstreamServer = await startDnsServer({ zone: createZone("example.test", source), host: "127.0.0.1", port: 0 });
  forwarding = await startDnsServer({ zone: createZone("cluster.local", source), host: "127.0.0.1", port: 0, upstream: `127.0.0.1:${upstreamServer.port}` });
  // An upstream that never answers.
  silent = dgram.createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", () => r()));
  silentForwarding = await startDnsServer({
    zone: createZone("cluster.local", source),
    host: "127.0.0.1",
    port: 0,
    upstream: `127.0.0.1:${silent.address().port}`,
    upstreamTimeoutMs: 300,
  });
});
afterAll(async () => {
  await Promise.all([server, upstreamServer, forwarding, silentForwarding].map((s) => s?.close()));
  silent?.close();
});

const data = (r: DecodedPacket, type = "A") => (r.answers ?? []).filter((a) => a.type === type).map((a) => (a as any).data);

describe("cluster names", () => {
  for (const tcp of [false, true]) {
    it(`answers a Service's ClusterIP over ${tcp ? "TCP" : "UDP"}, authoritatively, with the TTL`, async () => {
      const r = await query(server.port, "web.default.svc.cluster.local", "A", { tcp });
      expect(r.rcode).toBe("NOERROR");
      expect(r.flag_aa).toBe(true);
      expect(r.flag_qr).toBe(true);
      expect(data(r)).toEqual(["10.96.0.10"]);
      expect(r.answers![0].name).toBe("web.default.svc.cluster.local");
      expect((r.answers![0] as any).ttl).toBe(5);
    });
  }

  it("matches names case-insensitively and with a trailing dot", async () => {
    const r = await query(server.port, "WEB.Default.SVC.cluster.local.", "A");
    expect(data(r)).toEqual(["10.96.0.10"]);
  });

  it("answers a headless Service with its ready endpoints' IPs, and each endpoint by hostname", async () => {
    const r = await query(server.port, "db.default.svc.cluster.local", "A");
    expect(data(r).sort()).toEqual(["10.88.0.5", "10.88.0.6"]);
    expect(data(await query(server.port, "db-0.db.default.svc.cluster.local", "A"))).toEqual(["10.88.0.5"]);
    expect(data(await query(server.port, "10-88-0-6.db.default.svc.cluster.local", "A"))).toEqual(["10.88.0.6"]);
  });

  it("answers SRV for named ports: the Service name for a ClusterIP, every endpoint for a headless one", async () => {
    const r = await query(server.port, "_http._tcp.web.default.svc.cluster.local", "SRV");
    expect(data(r, "SRV")).toEqual([{ priority: 0, weight: 100, port: 80, target: "web.default.svc.cluster.local" }]);
    expect(data({ answers: r.additionals } as DecodedPacket)).toEqual(["10.96.0.10"]);
    const udp = await query(server.port, "_dns._udp.web.default.svc.cluster.local", "SRV");
    expect(data(udp, "SRV")[0].port).toBe(53);
    const h = await query(server.port, "_pg._tcp.db.default.svc.cluster.local", "SRV");
    expect(data(h, "SRV").map((s: any) => `${s.target}:${s.port}`).sort()).toEqual([
      "10-88-0-6.db.default.svc.cluster.local:5432",
      "db-0.db.default.svc.cluster.local:5432",
    ]);
    // The wrong protocol for a port name does not exist.
    expect((await query(server.port, "_http._udp.web.default.svc.cluster.local", "SRV")).rcode).toBe("NXDOMAIN");
  });

  it("answers pod names from the dashed IP", async () => {
    expect(data(await query(server.port, "10-88-0-42.default.pod.cluster.local", "A"))).toEqual(["10.88.0.42"]);
    expect((await query(server.port, "10-88-0-420.default.pod.cluster.local", "A")).rcode).toBe("NXDOMAIN");
  });

  it("answers an ExternalName Service with a CNAME", async () => {
    const r = await query(server.port, "ext.prod.svc.cluster.local", "A");
    expect(data(r, "CNAME")).toEqual(["db.example.org"]);
  });

  it("says NXDOMAIN for unknown names in the domain, with the SOA for negative caching", async () => {
    for (const name of ["nope.default.svc.cluster.local", "web.other.svc.cluster.local", "x.y.cluster.local", "a.b.web.default.svc.cluster.local"]) {
      const r = await query(server.port, name, "A");
      expect(r.rcode, name).toBe("NXDOMAIN");
      expect(r.answers).toEqual([]);
      expect(r.authorities![0].type).toBe("SOA");
      expect((r.authorities![0] as any).data.minimum).toBe(5);
    }
  });

  it("answers AAAA (and other types) for existing names with NODATA", async () => {
    const r = await query(server.port, "web.default.svc.cluster.local", "AAAA");
    expect(r.rcode).toBe("NOERROR");
    expect(r.answers).toEqual([]);
    expect(r.authorities![0].type).toBe("SOA");
    // A headless Service without ready endpoints exists but has no addresses.
    const pending = await query(server.port, "pending.default.svc.cluster.local", "A");
    expect(pending.rcode).toBe("NOERROR");
    expect(pending.answers).toEqual([]);
  });

  it("truncates a UDP answer that does not fit, and gives all of it over TCP or with a large EDNS size", async () => {
    const udp = await query(server.port, "big.default.svc.cluster.local", "A");
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    const tcp = await query(server.port, "big.default.svc.cluster.local", "A", { tcp: true });
    expect(tcp.flag_tc).toBe(false);
    expect(data(tcp)).toHaveLength(60);
    const edns = await query(server.port, "big.default.svc.cluster.local", "A", { edns: 4096 });
    expect(edns.flag_tc).toBe(false);
    expect(data(edns)).toHaveLength(60);
    // An EDNS query gets an OPT record back with the size we send; a plain one gets none.
    expect(edns.additionals!.filter((a) => a.type === "OPT").map((a: any) => a.udpPayloadSize)).toEqual([4096]);
    expect(udp.additionals!.some((a) => a.type === "OPT")).toBe(false);
    const small = await query(server.port, "big.default.svc.cluster.local", "A", { edns: 1232 });
    expect(small.flag_tc).toBe(true);
    expect(small.additionals!.some((a) => a.type === "OPT")).toBe(true);
  });

  it("answers several queries on one TCP connection and survives garbage", async () => {
    const garbage = await sendUdp(server.port, Buffer.from("this is not dns at all"));
    expect(garbage.rcode).toBe("FORMERR");
    expect(data(await query(server.port, "web.default.svc.cluster.local", "A"))).toEqual(["10.96.0.10"]);
  });
});

describe("names outside the cluster domain", () => {
  it("are refused at once without an upstream", async () => {
    const r = await query(server.port, "example.org", "A");
    expect(r.rcode).toBe("REFUSED");
    expect(r.flag_ra).toBe(false);
  });

  it("go to the configured upstream and come back as it answered", async () => {
    const r = await query(forwarding.port, "example.test", "SOA");
    expect(r.rcode).toBe("NOERROR");
    expect(data(r, "SOA")[0].mname).toBe("ns.dns.example.test");
    expect((await query(forwarding.port, "nothing.example.test", "A", { tcp: true })).rcode).toBe("NXDOMAIN");
    // An upstream answer too big for UDP comes back truncated, and whole over TCP (asked over TCP).
    const udp = await query(forwarding.port, "big.default.svc.example.test", "A");
    expect(udp.flag_tc).toBe(true);
    const tcp = await query(forwarding.port, "big.default.svc.example.test", "A", { tcp: true });
    expect(tcp.flag_tc).toBe(false);
    expect(data(tcp)).toHaveLength(60);
    // Cluster names are still answered here, not forwarded.
    expect(data(await query(forwarding.port, "web.default.svc.cluster.local", "A"))).toEqual(["10.96.0.10"]);
  });

  it("get SERVFAIL when the upstream does not answer", async () => {
    const r = await query(silentForwarding.port, "example.org", "A");
    expect(r.rcode).toBe("SERVFAIL");
  });
});

describe("cluster domain", () => {
  it("is normalised and checked", () => {
    expect(parseClusterDomain("Cluster.Local.")).toBe("cluster.local");
    expect(() => parseClusterDomain("bad_domain")).toThrow(/--cluster-domain/);
  });
});
