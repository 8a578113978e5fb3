import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { conntrackDeletions } from "./kernel.ts";
import { buildModel, udpFlushes } from "./model.ts";
import { buildRuleset, renderChanges } from "./ruleset.ts";

function svc(name: string, spec: Record<string, unknown>, namespace = "default"): Service {
  return create(ServiceSchema, { metadata: { name, namespace }, spec: spec as any });
}

function eps(name: string, subsets: Record<string, unknown>[], namespace = "default"): Endpoints {
  return create(EndpointsSchema, { metadata: { name, namespace }, subsets: subsets as any });
}

const opts = { table: "skiff-proxy", nodeAddresses: ["192.0.2.2"] };
const web = svc("web", { clusterIp: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: "http" }] });
const webEps = eps("web", [
  {
    addresses: [{ ip: "10.88.0.6" }, { ip: "10.88.0.5" }],
    notReadyAddresses: [{ ip: "10.88.0.7" }],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  },
]);

/** The body of one chain in the text, as its lines. */
function chainBody(text: string, name: string): string[] | undefined {
  const m = new RegExp(`\\tchain ${name.replace(/[/.]/g, "\\$&")} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text);
  return m?.[1].split("\n").map((l) => l.trim());
}

describe("buildModel", () => {
  it("takes ready addresses only, on the endpoint port of the service port's name and protocol", () => {
    const m = buildModel(
      [svc("web", { clusterIp: "10.96.0.10", ports: [{ name: "http", port: 80 }, { name: "dns", port: 53, protocol: "UDP" }] })],
      [
        eps("web", [
          { addresses: [{ ip: "10.88.0.5" }], ports: [{ name: "http", port: 8080 }, { name: "dns", port: 5353, protocol: "UDP" }, { name: "dns", port: 9, protocol: "TCP" }] },
          { addresses: [{ ip: "10.88.0.9" }], notReadyAddresses: [{ ip: "10.88.0.8" }], ports: [{ name: "http", port: 8081 }] },
        ]),
      ],
    );
    expect(m.ports.map((p) => [p.portName, p.protocol, p.port, p.backends.map((b) => `${b.ip}:${b.port}`)])).toEqual([
      ["dns", "udp", 53, ["10.88.0.5:5353"]],
      ["http", "tcp", 80, ["10.88.0.5:8080", "10.88.0.9:8081"]],
    ]);
  });

  it("leaves out headless, ExternalName and unallocated services (except their NodePorts), and says why for SCTP", () => {
    const m = buildModel(
      [
        svc("headless", { clusterIp: "None", ports: [{ port: 80 }] }),
        svc("ext", { type: "ExternalName", externalName: "example.org" }),
        svc("pending", { ports: [{ port: 80 }] }),
        svc("np-only", { type: "NodePort", ports: [{ port: 80, nodePort: 30080 }] }),
        svc("sctp", { clusterIp: "10.96.0.11", ports: [{ port: 80, protocol: "SCTP" }] }),
        svc("v6", { clusterIp: "fd00::1", ports: [{ port: 80 }] }),
      ],
      [],
    );
    expect(m.ports.map((p) => `${p.name}:${p.clusterIP}:${p.nodePort}`)).toEqual(["np-only::30080"]);
    expect(m.skipped.map((s) => s.service).sort()).toEqual(["default/sctp", "default/v6"]);
  });

  it("ignores a nodePort on a ClusterIP service (only NodePort and LoadBalancer open one)", () => {
    const m = buildModel([svc("web", { clusterIp: "10.96.0.10", ports: [{ port: 80, nodePort: 30080 }] })], []);
    expect(m.ports[0].nodePort).toBe(0);
  });
});

describe("buildRuleset", () => {
  it("replaces the whole table in one transaction", () => {
    const { text } = buildRuleset(buildModel([web], [webEps]), opts);
    expect(text.startsWith("table ip skiff-proxy {}\ndelete table ip skiff-proxy\ntable ip skiff-proxy {\n")).toBe(true);
    expect(text.match(/^table ip /gm)).toHaveLength(2);
  });

  it("DNATs a ClusterIP to a random ready backend, each chain masquerading the backend reaching itself", () => {
    const { text } = buildRuleset(buildModel([web], [webEps]), opts);
    expect(text).toContain("\t\t\t10.96.0.10 . tcp . 80 : goto svc-default/web/tcp-80,\n");
    expect(chainBody(text, "svc-default/web/tcp-80")).toEqual([
      "numgen random mod 2 vmap { 0 : goto ep-default/web/tcp-80/10.88.0.5-8080, 1 : goto ep-default/web/tcp-80/10.88.0.6-8080 }",
    ]);
    expect(chainBody(text, "ep-default/web/tcp-80/10.88.0.5-8080")).toEqual([
      "ip saddr 10.88.0.5 meta mark set meta mark | 0x4000",
      "meta l4proto tcp dnat to 10.88.0.5:8080",
    ]);
    expect(text).not.toContain("10.88.0.7");
    // Pods (prerouting) and the host itself (output) go through the same dispatch.
    expect(chainBody(text, "nat-prerouting")).toEqual(["type nat hook prerouting priority -100; policy accept;", "jump services"]);
    expect(chainBody(text, "nat-output")).toEqual(["type nat hook output priority -100; policy accept;", "jump services"]);
    expect(chainBody(text, "nat-postrouting")).toEqual([
      "type nat hook postrouting priority 100; policy accept;",
      "meta mark & 0x4000 == 0x4000 meta mark set meta mark ^ 0x4000 masquerade fully-random",
    ]);
  });

  it("jumps straight to a single backend and writes UDP services with udp DNAT", () => {
    const { text } = buildRuleset(
      buildModel(
        [svc("dns", { clusterIp: "10.96.0.53", ports: [{ port: 53, targetPort: "5353", protocol: "UDP" }] })],
        [eps("dns", [{ addresses: [{ ip: "10.88.0.5" }], ports: [{ port: 5353, protocol: "UDP" }] }])],
      ),
      opts,
    );
    expect(chainBody(text, "svc-default/dns/udp-53")).toEqual(["goto ep-default/dns/udp-53/10.88.0.5-5353"]);
    expect(chainBody(text, "ep-default/dns/udp-53/10.88.0.5-5353")).toContain("meta l4proto udp dnat to 10.88.0.5:5353");
    expect(text).toContain("10.96.0.53 . udp . 53 : goto svc-default/dns/udp-53,");
  });

  it("opens NodePorts on the node's addresses, masquerading them", () => {
    const np = svc("web", { type: "NodePort", clusterIp: "10.96.0.10", ports: [{ name: "http", port: 80, nodePort: 30080 }] });
    const { text } = buildRuleset(buildModel([np], [webEps]), { ...opts, nodeAddresses: ["192.0.2.2", "10.88.0.1", "192.0.2.2"] });
    expect(text).toContain("\tset node-ips {\n\t\ttype ipv4_addr\n\t\telements = {\n\t\t\t10.88.0.1,\n\t\t\t192.0.2.2,\n\t\t}\n");
    expect(text).toContain("\t\t\ttcp . 30080 : goto ext-default/web/tcp-80,\n");
    expect(chainBody(text, "ext-default/web/tcp-80")).toEqual(["meta mark set meta mark | 0x4000", "goto svc-default/web/tcp-80"]);
    expect(chainBody(text, "services")).toEqual([
      "ip daddr . meta l4proto . th dport vmap @cluster-ips",
      "ip daddr @node-ips meta l4proto . th dport vmap @node-ports",
    ]);
  });

  it("rejects (TCP reset, ICMP port unreachable) for services without ready backends, after DNAT had its chance", () => {
    const np = svc("web", { type: "NodePort", clusterIp: "10.96.0.10", ports: [{ name: "http", port: 80, nodePort: 30080 }] });
    const { text } = buildRuleset(buildModel([np], [eps("web", [{ notReadyAddresses: [{ ip: "10.88.0.5" }], ports: [{ name: "http", port: 8080 }] }])]), opts);
    expect(text).toContain("\t\t\t10.96.0.10 . tcp . 80 : goto reject-no-endpoints,\n");
    expect(text).toContain("\t\t\ttcp . 30080 : goto reject-no-endpoints,\n");
    expect(text).not.toContain("svc-default/web");
    expect(chainBody(text, "reject-no-endpoints")).toEqual(["meta l4proto tcp reject with tcp reset", "reject with icmp type port-unreachable"]);
    expect(chainBody(text, "filter-prerouting")).toEqual(["type filter hook prerouting priority -90; policy accept;", "ct state new jump no-endpoints"]);
    expect(chainBody(text, "filter-output")).toEqual(["type filter hook output priority -90; policy accept;", "ct state new jump no-endpoints"]);
  });

  it("rejects what is left for the Service range after DNAT (unallocated addresses, unserved ports), only when given the range", () => {
    const without = buildRuleset(buildModel([web], [webEps]), opts).text;
    expect(without).not.toContain("reject-unallocated");
    const { text } = buildRuleset(buildModel([web], [webEps]), { ...opts, serviceCidr: "10.96.0.0/12" });
    // Last in no-endpoints: Services without backends keep their port-unreachable answer.
    expect(chainBody(text, "no-endpoints")).toEqual([
      "ip daddr . meta l4proto . th dport vmap @no-endpoint-cluster-ips",
      "ip daddr @node-ips meta l4proto . th dport vmap @no-endpoint-node-ports",
      "ip daddr 10.96.0.0/12 goto reject-unallocated",
    ]);
    expect(chainBody(text, "reject-unallocated")).toEqual(["meta l4proto tcp reject with tcp reset", "reject with icmp type host-unreachable"]);
  });

  it("refuses a Service range that is not an IPv4 CIDR, naming the flag", () => {
    expect(() => buildRuleset(buildModel([], []), { ...opts, serviceCidr: "10.96.0.1/12" })).toThrow(/--service-cluster-ip-range 10.96.0.1\/12 has host bits set \(did you mean 10.96.0.0\/12\?\)/);
    expect(() => buildRuleset(buildModel([], []), { ...opts, serviceCidr: "fd00::/108" })).toThrow(/--service-cluster-ip-range must be an IPv4 CIDR/);
  });

  it("masquerades the whole pod CIDR towards local backends when asked (no br_netfilter)", () => {
    const { text } = buildRuleset(buildModel([web], [eps("web", [{ addresses: [{ ip: "10.88.0.5" }, { ip: "10.77.0.5" }], ports: [{ name: "http", port: 8080 }] }])]), {
      ...opts,
      masqueradePodCidr: "10.88.0.0/24",
    });
    expect(chainBody(text, "ep-default/web/tcp-80/10.88.0.5-8080")?.[0]).toBe("ip saddr 10.88.0.0/24 meta mark set meta mark | 0x4000");
    // A backend of another node is reached through the routes, not this bridge.
    expect(chainBody(text, "ep-default/web/tcp-80/10.77.0.5-8080")?.[0]).toBe("ip saddr 10.77.0.5 meta mark set meta mark | 0x4000");
  });

  it("keeps the first Service of two claiming the same address and port, and says so", () => {
    const a = svc("a", { clusterIp: "10.96.0.10", ports: [{ port: 80 }] });
    const b = svc("b", { clusterIp: "10.96.0.10", ports: [{ port: 80 }] });
    const r = buildRuleset(buildModel([b, a], []), opts);
    expect(r.text.match(/10\.96\.0\.10 \. tcp \. 80 :/g)).toHaveLength(1);
    expect(r.skipped).toEqual([{ service: "default/b", reason: "10.96.0.10:80/tcp is already another Service's" }]);
  });

  it("counts rules and elements, and writes the same text for the same input in any order", () => {
    const a = buildRuleset(buildModel([web, svc("x", { clusterIp: "10.96.0.11", ports: [{ port: 81 }] })], [webEps]), opts);
    const b = buildRuleset(buildModel([svc("x", { clusterIp: "10.96.0.11", ports: [{ port: 81 }] }), web], [webEps]), opts);
    expect(a.text).toBe(b.text);
    // 1 node IP + 1 cluster-ip + 1 no-endpoint element; hooks 5, services 2, no-endpoints 2,
    // reject 2; svc 1 + 2 endpoints × 2.
    expect(a.rules).toBe(3 + 5 + 6 + 5);
  });

  it("refuses a bad table name or node address", () => {
    expect(() => buildRuleset(buildModel([], []), { ...opts, table: "x; flush ruleset" })).toThrow(/invalid nft table name/);
    expect(() => buildRuleset(buildModel([], []), { ...opts, nodeAddresses: ["fd00::1"] })).toThrow(/invalid node address/);
  });
});

describe("UDP conntrack flushes", () => {
  const dns = (ips: string[]) => [
    [svc("dns", { type: "NodePort", clusterIp: "10.96.0.53", ports: [{ port: 53, protocol: "UDP", nodePort: 30053 }] })],
    [eps("dns", [{ addresses: ips.map((ip) => ({ ip })), ports: [{ port: 5353, protocol: "UDP" }] }])],
  ] as const;

  it("forgets flows DNATed to a removed backend, and unNATed flows of a service that gets its first backend", () => {
    const before = buildModel(...dns(["10.88.0.5", "10.88.0.6"]));
    const after = buildModel(...dns(["10.88.0.6"]));
    expect(conntrackDeletions(udpFlushes(before, after))).toEqual([["-D", "-p", "udp", "--dst-nat", "10.88.0.5", "--reply-port-src", "5353"]]);
    const empty = buildModel(...dns([]));
    expect(conntrackDeletions(udpFlushes(empty, after))).toEqual([
      ["-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53"],
      ["-D", "-p", "udp", "--orig-port-dst", "30053"],
    ]);
  });

  it("forgets the backends of a deleted service, and nothing for TCP", () => {
    const before = buildModel(...dns(["10.88.0.5"]));
    expect(conntrackDeletions(udpFlushes(before, buildModel([], [])))).toEqual([["-D", "-p", "udp", "--dst-nat", "10.88.0.5", "--reply-port-src", "5353"]]);
    expect(conntrackDeletions(udpFlushes(buildModel([web], [webEps]), buildModel([], [])))).toEqual([]);
  });
});

describe("renderChanges", () => {
  const np = (ips: string[]) =>
    buildRuleset(
      buildModel(
        [svc("web", { type: "NodePort", clusterIp: "10.96.0.10", ports: [{ name: "http", port: 80, nodePort: 30080 }] })],
        [eps("web", [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: "http", port: 8080 }] }])],
      ),
      opts,
    ).state;

  it("is empty when nothing changed", () => {
    expect(renderChanges(np(["10.88.0.5"]), np(["10.88.0.5"]))).toBe("");
  });

  it("adds the new backend's chain, rewrites the service chain, then deletes the old backend's chain", () => {
    expect(renderChanges(np(["10.88.0.5", "10.88.0.6"]), np(["10.88.0.6", "10.88.0.7"]))!.split("\n")).toEqual([
      "flush chain ip skiff-proxy svc-default/web/tcp-80",
      "add chain ip skiff-proxy ep-default/web/tcp-80/10.88.0.7-8080",
      "add rule ip skiff-proxy svc-default/web/tcp-80 numgen random mod 2 vmap { 0 : goto ep-default/web/tcp-80/10.88.0.6-8080, 1 : goto ep-default/web/tcp-80/10.88.0.7-8080 }",
      "add rule ip skiff-proxy ep-default/web/tcp-80/10.88.0.7-8080 ip saddr 10.88.0.7 meta mark set meta mark | 0x4000",
      "add rule ip skiff-proxy ep-default/web/tcp-80/10.88.0.7-8080 meta l4proto tcp dnat to 10.88.0.7:8080",
      "delete chain ip skiff-proxy ep-default/web/tcp-80/10.88.0.5-8080",
      "",
    ]);
  });

  it("moves a service to the reject maps when its last backend goes, dropping its chains referrers first", () => {
    expect(renderChanges(np(["10.88.0.5"]), np([]))!.split("\n")).toEqual([
      "delete element ip skiff-proxy cluster-ips { 10.96.0.10 . tcp . 80 }",
      "delete element ip skiff-proxy node-ports { tcp . 30080 }",
      "add element ip skiff-proxy no-endpoint-cluster-ips { 10.96.0.10 . tcp . 80 : goto reject-no-endpoints }",
      "add element ip skiff-proxy no-endpoint-node-ports { tcp . 30080 : goto reject-no-endpoints }",
      "delete chain ip skiff-proxy ext-default/web/tcp-80",
      "delete chain ip skiff-proxy svc-default/web/tcp-80",
      "delete chain ip skiff-proxy ep-default/web/tcp-80/10.88.0.5-8080",
      "",
    ]);
  });
});
