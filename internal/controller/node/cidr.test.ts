import { describe, expect, it } from "vitest";
import { createCidrAllocator, formatIp, parseCidr } from "./cidr.ts";

describe("parseCidr", () => {
  it("parses and masks host bits", () => {
    expect(parseCidr("10.244.0.0/16")).toEqual({ start: 0x0af40000, size: 65536, prefix: 16 });
    expect(formatIp(parseCidr("10.244.3.7/24").start)).toBe("10.244.3.0");
  });
  it.each(["10.244.0.0", "10.244.0/16", "10.244.0.0/33", "300.1.1.1/8", "fd00::/64", "10.0.0.0/16/1"])("rejects %s", (c) => {
    expect(() => parseCidr(c)).toThrow(/invalid IPv4 CIDR/);
  });
});

describe("createCidrAllocator", () => {
  it("hands out consecutive /24s of the cluster range, each once", () => {
    const a = createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 24 });
    expect(a.capacity).toBe(256);
    expect(a.allocate("n1")).toBe("10.244.0.0/24");
    expect(a.allocate("n2")).toBe("10.244.1.0/24");
    // Asking again for the same node gives the range it holds.
    expect(a.allocate("n1")).toBe("10.244.0.0/24");
    expect(a.used()).toBe(2);
  });

  it("skips ranges observed on existing nodes (the state rebuilt at start)", () => {
    const a = createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 24 });
    expect(a.observe("old-1", ["10.244.0.0/24"])).toEqual([]);
    a.observe("old-2", ["10.244.1.0/24"]);
    a.observe("outside", ["192.168.7.0/24"]); // not ours: ignored
    expect(a.allocate("new")).toBe("10.244.2.0/24");
    expect(a.used()).toBe(3);
  });

  it("a larger range on a node blocks every /24 it covers", () => {
    const a = createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 24 });
    a.observe("big", ["10.244.0.0/23"]);
    expect(a.allocate("n")).toBe("10.244.2.0/24");
  });

  it("reports a range observed on two nodes", () => {
    const a = createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 24 });
    a.observe("a", ["10.244.5.0/24"]);
    expect(a.observe("b", ["10.244.5.0/24"])).toEqual(["10.244.5.0/24 (also a)"]);
  });

  it("releases a deleted node's range, and reuses it only after the others", () => {
    const a = createCidrAllocator({ clusterCidr: "10.0.0.0/30", nodeMaskSize: 32 });
    expect([a.allocate("a"), a.allocate("b"), a.allocate("c"), a.allocate("d")]).toEqual(["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]);
    expect(a.allocate("e")).toBeUndefined();
    a.release("b");
    expect(a.heldBy("b")).toEqual([]);
    expect(a.allocate("e")).toBe("10.0.0.1/32");
    expect(a.allocate("f")).toBeUndefined();
  });

  it("observe replaces what a node held (a pending allocation the node did not take)", () => {
    const a = createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 24 });
    expect(a.allocate("n")).toBe("10.244.0.0/24");
    a.observe("n", ["10.244.9.0/24"]);
    expect(a.heldBy("n")).toEqual(["10.244.9.0/24"]);
    expect(a.allocate("m")).toBe("10.244.1.0/24");
    a.release("m");
    // 10.244.0.0/24 was given back when n turned out to hold another range.
    expect(a.allocate("k")).toBe("10.244.2.0/24");
    expect(a.used()).toBe(2);
  });

  it("rejects a mask shorter than the cluster prefix", () => {
    expect(() => createCidrAllocator({ clusterCidr: "10.244.0.0/16", nodeMaskSize: 8 })).toThrow(/between/);
  });
});
