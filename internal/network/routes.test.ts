import { describe, expect, it } from "vitest";
import { planRoutes, ROUTE_PROTO, routeTo, type HostRoutes, type PeerNode } from "./routes.ts";
import { parseIPv4 } from "./conflist.ts";

const P = String(ROUTE_PROTO);

/** Node A: eth0 10.0.0.11/24, default via 10.0.0.1, its pod bridge on 10.244.1.0/24. */
function host(extra: HostRoutes["routes"] = []): HostRoutes {
  return {
    routes: [
      { dst: "default", gateway: "10.0.0.1", dev: "eth0" },
      { dst: "10.0.0.0/24", dev: "eth0", protocol: "kernel" },
      { dst: "10.244.1.0/24", dev: "cni0", protocol: "kernel" },
      ...extra,
    ],
    addresses: ["127.0.0.1", "10.0.0.11", "10.244.1.1"],
  };
}

const peer = (name: string, ip: string, ...podCidrs: string[]): PeerNode => ({ name, internalIP: ip, podCidrs });
const plan = (peers: PeerNode[], h = host()) => planRoutes({ self: "a", ownPodCidr: "10.244.1.0/24", peers, host: h });

describe("planRoutes", () => {
  it("routes each other node's pod CIDR via its InternalIP, skipping itself and nodes without a CIDR or address", () => {
    const p = plan([peer("a", "10.0.0.11", "10.244.1.0/24"), peer("b", "10.0.0.12", "10.244.2.0/24"), peer("c", "10.0.0.13", "10.244.3.0/24"), peer("d", "", "10.244.4.0/24"), peer("e", "10.0.0.15")]);
    expect(p.want).toEqual([
      { dst: "10.244.2.0/24", via: "10.0.0.12", node: "b" },
      { dst: "10.244.3.0/24", via: "10.0.0.13", node: "c" },
    ]);
    expect(p.commands).toEqual([`route replace 10.244.2.0/24 via 10.0.0.12 proto ${P}`, `route replace 10.244.3.0/24 via 10.0.0.13 proto ${P}`]);
    expect(p.skipped).toEqual([]);
  });

  it("does nothing when Skiff's routes are already right (idempotent)", () => {
    const h = host([{ dst: "10.244.2.0/24", gateway: "10.0.0.12", dev: "eth0", protocol: P }]);
    expect(plan([peer("b", "10.0.0.12", "10.244.2.0/24")], h).commands).toEqual([]);
  });

  it("replaces a route whose node moved and deletes routes of nodes that are gone, touching no other route", () => {
    const h = host([
      { dst: "10.244.2.0/24", gateway: "10.0.0.99", dev: "eth0", protocol: P },
      { dst: "10.244.7.0/24", gateway: "10.0.0.17", dev: "eth0", protocol: P },
      { dst: "192.168.5.0/24", gateway: "10.0.0.1", dev: "eth0", protocol: "static" },
    ]);
    expect(plan([peer("b", "10.0.0.12", "10.244.2.0/24")], h).commands).toEqual([
      `route replace 10.244.2.0/24 via 10.0.0.12 proto ${P}`,
      `route del 10.244.7.0/24 proto ${P}`,
    ]);
  });

  it("refuses a node reached through a router (not on this L2 segment) and says why", () => {
    const p = plan([peer("far", "192.0.2.7", "10.244.9.0/24")]);
    expect(p.want).toEqual([]);
    expect(p.commands).toEqual([]);
    expect(p.skipped).toHaveLength(1);
    expect(p.skipped[0]).toMatchObject({ node: "far", reason: "NotOnSegment" });
    expect(p.skipped[0].message).toContain("192.0.2.7 is reached via router 10.0.0.1 on eth0");
    expect(p.skipped[0].message).toContain("one L2 segment");
  });

  it("removes its route to a node that moved off the segment", () => {
    const h = host([{ dst: "10.244.9.0/24", gateway: "10.0.0.19", dev: "eth0", protocol: P }]);
    expect(plan([peer("far", "192.0.2.7", "10.244.9.0/24")], h).commands).toEqual([`route del 10.244.9.0/24 proto ${P}`]);
  });

  it("refuses CIDRs that overlap its own, another node's, or a route Skiff did not make", () => {
    const h = host([{ dst: "10.244.5.0/24", gateway: "10.0.0.1", dev: "eth0", protocol: "static" }]);
    const p = plan([
      peer("b", "10.0.0.12", "10.244.1.0/25"),
      peer("c", "10.0.0.13", "10.244.3.0/24"),
      peer("d", "10.0.0.14", "10.244.3.128/25"),
      peer("e", "10.0.0.15", "10.244.5.0/24"),
      peer("f", "10.0.0.11", "10.244.6.0/24"),
      peer("g", "10.0.0.x", "10.244.7.0/24"),
      peer("h", "10.0.0.18", "10.244.8.0"),
    ], h);
    expect(p.want.map((w) => w.node)).toEqual(["c"]);
    expect(p.skipped.map((s) => [s.node, s.reason])).toEqual([
      ["b", "Overlap"],
      ["d", "Overlap"],
      ["e", "Conflict"],
      ["f", "OwnAddress"],
      ["g", "Invalid"],
      ["h", "Invalid"],
    ]);
  });
});

describe("routeTo", () => {
  it("takes the most specific route and ignores Skiff's own", () => {
    const routes = host([
      { dst: "10.0.0.128/25", gateway: "10.0.0.1", dev: "eth0" },
      { dst: "10.0.0.12", gateway: "10.0.0.40", dev: "eth0", protocol: P },
    ]).routes;
    expect(routeTo(routes, parseIPv4("10.0.0.12")!)?.dst).toBe("10.0.0.0/24");
    expect(routeTo(routes, parseIPv4("10.0.0.200")!)?.dst).toBe("10.0.0.128/25");
    expect(routeTo(routes, parseIPv4("8.8.8.8")!)?.dst).toBe("default");
  });
});
