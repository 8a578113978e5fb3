import { describe, expect, it } from "vitest";
import { buildConflist, CNI_VERSION, formatIPv4, parseCidr } from "./conflist.ts";

describe("buildConflist", () => {
  it("chains bridge (host-local IPAM) and portmap", () => {
    const c = buildConflist({ network: { name: "skiff", podCidr: "10.88.0.0/24" }, portmap: true, ipamDataDir: "/state/networks" });
    expect(c).toEqual({
      cniVersion: CNI_VERSION,
      name: "skiff",
      plugins: [
        {
          type: "bridge",
          bridge: "skiff0",
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: "10.88.0.0/24", gateway: "10.88.0.1" }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: "/state/networks",
          },
        },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    });
  });

  it("takes bridge, gateway, mtu and ipMasq; portmap is optional", () => {
    const c = buildConflist({
      network: { name: "n1", bridge: "br-x", podCidr: "10.1.0.0/16", gateway: "10.1.255.254", mtu: 1400, ipMasq: false },
      portmap: false,
      ipamDataDir: "/d",
    });
    expect(c.plugins).toHaveLength(1);
    const b = c.plugins[0] as any;
    expect(b.bridge).toBe("br-x");
    expect(b.mtu).toBe(1400);
    expect(b.ipMasq).toBe(false);
    expect(b.ipam.ranges[0][0]).toEqual({ subnet: "10.1.0.0/16", gateway: "10.1.255.254" });
  });

  it("rejects bad names, CIDRs, gateways and MTUs with a clear message", () => {
    const build = (network: any) => () => buildConflist({ network, portmap: true, ipamDataDir: "/d" });
    expect(build({ name: "-x", podCidr: "10.0.0.0/24" })).toThrow(/invalid CNI network name/);
    expect(build({ name: "x", bridge: "a-very-long-bridge-name", podCidr: "10.0.0.0/24" })).toThrow(/invalid bridge name/);
    expect(build({ name: "x", podCidr: "10.0.0.5/24" })).toThrow(/host bits set \(did you mean 10\.0\.0\.0\/24\?\)/);
    expect(build({ name: "x", podCidr: "10.0.0.0" })).toThrow(/invalid pod CIDR/);
    expect(build({ name: "x", podCidr: "fd00::/64" })).toThrow(/invalid pod CIDR/);
    expect(build({ name: "x", podCidr: "10.0.0.0/24", gateway: "10.0.1.1" })).toThrow(/not a host address of 10\.0\.0\.0\/24/);
    expect(build({ name: "x", podCidr: "10.0.0.0/24", gateway: "10.0.0.255" })).toThrow(/invalid gateway/);
    expect(build({ name: "x", podCidr: "10.0.0.0/24", mtu: 100 })).toThrow(/invalid mtu/);
  });
});

describe("parseCidr", () => {
  it("computes the usable host range", () => {
    const c = parseCidr("10.231.7.0/24");
    expect(formatIPv4(c.first)).toBe("10.231.7.1");
    expect(formatIPv4(c.last)).toBe("10.231.7.254");
    expect(c.prefix).toBe(24);
  });
});
