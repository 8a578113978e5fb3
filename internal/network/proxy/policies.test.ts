// Rule generation for sessionAffinity ClientIP and the traffic policies "Local".
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { parseAffinityElements } from "./kernel.ts";
import { buildModel } from "./model.ts";
import { buildRuleset, renderChanges, renderTable } from "./ruleset.ts";

const opts = { table: "skiff-proxy", nodeAddresses: ["192.0.2.2"] };
const svc = (spec: Record<string, unknown>): Service =>
  create(ServiceSchema, { metadata: { name: "web", namespace: "default" }, spec: { clusterIp: "10.96.0.10", ...spec } as any });
/** Backends 10.88.0.5 (on node-a) and 10.88.1.5 (on node-b). */
const eps: Endpoints = create(EndpointsSchema, {
  metadata: { name: "web", namespace: "default" },
  subsets: [{ addresses: [{ ip: "10.88.0.5", nodeName: "node-a" }, { ip: "10.88.1.5", nodeName: "node-b" }], ports: [{ port: 8080 }] }],
} as any);
const rules = (spec: Record<string, unknown>, node = "node-a") => buildRuleset(buildModel([svc(spec)], [eps], node), opts).state;
const EP_A = "ep-default/web/tcp-80/10.88.0.5-8080";
const EP_B = "ep-default/web/tcp-80/10.88.1.5-8080";
const AFF_A = "aff-default/web/tcp-80/10.88.0.5-8080";
const AFF_B = "aff-default/web/tcp-80/10.88.1.5-8080";

describe("sessionAffinity ClientIP", () => {
  const sticky = { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIp: { timeoutSeconds: 600 } }, ports: [{ port: 80, targetPort: "8080" }] };

  it("sends a known client to its backend before spreading, and each backend remembers its clients with the timeout", () => {
    const s = rules(sticky);
    expect(s.chains.get("svc-default/web/tcp-80")).toEqual([
      `ip saddr @${AFF_A} goto ${EP_A}`,
      `ip saddr @${AFF_B} goto ${EP_B}`,
      `numgen random mod 2 vmap { 0 : goto ${EP_A}, 1 : goto ${EP_B} }`,
    ]);
    expect(s.chains.get(EP_A)).toEqual(["ip saddr 10.88.0.5 meta mark set meta mark | 0x4000", `update @${AFF_A} { ip saddr }`, "meta l4proto tcp dnat to 10.88.0.5:8080"]);
    expect([...s.affinitySets]).toEqual([[AFF_A, 600], [AFF_B, 600]]);
    expect(renderTable(s)).toContain(`\tset ${AFF_A} {\n\t\ttype ipv4_addr; flags dynamic,timeout; timeout 600s;\n\t}\n`);
  });

  it("defaults the timeout to 3 hours; without affinity there are no sets", () => {
    expect([...rules({ sessionAffinity: "ClientIP", ports: [{ port: 80 }] }).affinitySets.values()]).toEqual([10_800, 10_800]);
    const plain = rules({ ports: [{ port: 80 }] });
    expect(plain.affinitySets.size).toBe(0);
    expect(plain.chains.get("svc-default/web/tcp-80")).toEqual([`numgen random mod 2 vmap { 0 : goto ${EP_A}, 1 : goto ${EP_B} }`]);
  });

  it("writes clients the kernel holds back into a whole table, so they keep their backend", () => {
    const carried = parseAffinityElements(
      JSON.stringify({ nftables: [{ metainfo: {} }, { set: { name: AFF_A, elem: [{ elem: { val: "198.51.100.1", expires: 599 } }, { elem: { val: "x; drop", expires: 5 } }] } }, { set: { name: "node-ips", elem: ["192.0.2.2"] } }] }),
    );
    expect([...carried]).toEqual([[AFF_A, [{ ip: "198.51.100.1", expiresSeconds: 599 }]]]);
    expect(renderTable(rules(sticky), carried)).toContain(`\tset ${AFF_A} {\n\t\ttype ipv4_addr; flags dynamic,timeout; timeout 600s;\n\t\telements = { 198.51.100.1 expires 599s }\n\t}\n`);
    // A shorter timeout than the client has left (the kernel refuses expires > timeout).
    const shorter = rules({ ...sticky, sessionAffinityConfig: { clientIp: { timeoutSeconds: 60 } } });
    expect(renderTable(shorter, carried)).toContain("elements = { 198.51.100.1 expires 60s }");
  });

  it("adds sets before the rules using them, deletes them after, and asks for a whole write when the timeout changes", () => {
    const before = rules({ ports: [{ port: 80 }] });
    const after = rules(sticky);
    const add = renderChanges(before, after)!.split("\n");
    expect(add[0]).toBe(`add set ip skiff-proxy ${AFF_A} { type ipv4_addr; flags dynamic,timeout; timeout 600s; }`);
    expect(add[1]).toBe(`add set ip skiff-proxy ${AFF_B} { type ipv4_addr; flags dynamic,timeout; timeout 600s; }`);
    const remove = renderChanges(after, before)!.trim().split("\n");
    expect(remove.slice(-2)).toEqual([`delete set ip skiff-proxy ${AFF_A}`, `delete set ip skiff-proxy ${AFF_B}`]);
    expect(renderChanges(after, rules({ ...sticky, sessionAffinityConfig: { clientIp: { timeoutSeconds: 60 } } }))).toBeUndefined();
  });
});

describe("externalTrafficPolicy Local", () => {
  const nodePort = (extra: Record<string, unknown> = {}) => ({ type: "NodePort", externalTrafficPolicy: "Local", ports: [{ port: 80, nodePort: 30080 }], ...extra });
  const withPods = (spec: Record<string, unknown>, node: string) =>
    buildRuleset(buildModel([svc(spec)], [eps], node), { ...opts, podCidr: "10.88.0.0/24" }).state;

  it("sends outside clients to this node's backends only, without the masquerade mark; the ClusterIP still spreads over all", () => {
    const s = withPods(nodePort(), "node-a");
    expect(s.elements["node-ports"].get("tcp . 30080")).toBe("goto ext-default/web/tcp-80");
    expect(s.chains.get("ext-default/web/tcp-80")).toEqual([
      "ip saddr 10.88.0.0/24 goto svc-default/web/tcp-80",
      "fib saddr type local meta mark set meta mark | 0x4000",
      "fib saddr type local goto svc-default/web/tcp-80",
      "goto lcl-default/web/tcp-80",
    ]);
    expect(s.chains.get("lcl-default/web/tcp-80")).toEqual([`goto ${EP_A}`]);
    expect(s.elements["cluster-ips"].get("10.96.0.10 . tcp . 80")).toBe("goto svc-default/web/tcp-80");
    expect(s.chains.get("svc-default/web/tcp-80")).toEqual([`numgen random mod 2 vmap { 0 : goto ${EP_A}, 1 : goto ${EP_B} }`]);
  });

  it("drops outside clients on a node without a backend of its own; its pods and the node itself still reach every backend", () => {
    const s = withPods(nodePort(), "node-c");
    expect(s.chains.get("ext-default/web/tcp-80")).toEqual([
      "ip saddr 10.88.0.0/24 goto svc-default/web/tcp-80",
      "fib saddr type local meta mark set meta mark | 0x4000",
      "fib saddr type local goto svc-default/web/tcp-80",
      "drop",
    ]);
    expect(s.chains.has("lcl-default/web/tcp-80")).toBe(false);
    expect(s.chains.has(EP_A) && s.chains.has(EP_B)).toBe(true);
    expect(rules(nodePort(), "node-c").chains.get("ext-default/web/tcp-80")![0]).toBe("fib saddr type local meta mark set meta mark | 0x4000");
  });

  it("Cluster (the default) masquerades NodePort traffic and spreads it over every backend", () => {
    const s = rules(nodePort({ externalTrafficPolicy: "Cluster" }));
    expect(s.elements["node-ports"].get("tcp . 30080")).toBe("goto ext-default/web/tcp-80");
    expect(s.chains.get("ext-default/web/tcp-80")).toEqual(["meta mark set meta mark | 0x4000", "goto svc-default/web/tcp-80"]);
  });
});

describe("internalTrafficPolicy Local", () => {
  it("sends ClusterIP traffic to this node's backends only, and rejects it on a node without one", () => {
    const local = rules({ internalTrafficPolicy: "Local", ports: [{ port: 80 }] }, "node-b");
    expect(local.elements["cluster-ips"].get("10.96.0.10 . tcp . 80")).toBe("goto lcl-default/web/tcp-80");
    expect(local.chains.get("lcl-default/web/tcp-80")).toEqual([`goto ${EP_B}`]);
    expect(local.chains.has(EP_A)).toBe(false);
    expect(local.chains.has("svc-default/web/tcp-80")).toBe(false);
    const none = rules({ internalTrafficPolicy: "Local", ports: [{ port: 80 }] }, "node-c");
    expect(none.elements["cluster-ips"].size).toBe(0);
    expect(none.elements["no-endpoint-cluster-ips"].get("10.96.0.10 . tcp . 80")).toBe("goto reject-no-endpoints");
  });

  it("knows no local backend when the proxy has no node name", () => {
    const m = buildModel([svc({ internalTrafficPolicy: "Local", ports: [{ port: 80 }] })], [eps]);
    expect(m.ports[0].backends.map((b) => b.local)).toEqual([false, false]);
  });
});
