import { describe, expect, it } from "vitest";
import { masqueradeChain, masqueradeScript } from "./masquerade.ts";

const o = { network: "skiff", podCidr: "10.244.1.0/24", clusterCidr: "10.244.0.0/16" };
const chain = masqueradeChain("skiff");
const jump = `-A POSTROUTING -s 10.244.1.0/24 -m comment --comment "skiff-masq: skiff" -j ${chain}`;

describe("masqueradeScript", () => {
  it("keeps pod, cluster and multicast destinations and masquerades the rest", () => {
    const script = masqueradeScript({ chains: new Set(), rules: [] }, o);
    expect(script).toBe(
      [
        "*nat",
        `:${chain} - [0:0]`,
        `-A ${chain} -d 10.244.1.0/24 -j RETURN`,
        `-A ${chain} -d 10.244.0.0/16 -j RETURN`,
        `-A ${chain} -d 224.0.0.0/4 -j RETURN`,
        `-A ${chain} -j MASQUERADE`,
        jump,
        "COMMIT",
        "",
      ].join("\n"),
    );
  });

  it("writes nothing when the rules are as wanted, and repairs a changed chain without adding the jump twice", () => {
    const good = [
      jump,
      `-A ${chain} -d 10.244.1.0/24 -j RETURN`,
      `-A ${chain} -d 10.244.0.0/16 -j RETURN`,
      `-A ${chain} -d 224.0.0.0/4 -j RETURN`,
      `-A ${chain} -j MASQUERADE`,
    ];
    expect(masqueradeScript({ chains: new Set([chain]), rules: good }, o)).toBeUndefined();
    const kept = masqueradeScript({ chains: new Set([chain]), rules: [jump] }, o);
    expect(kept).toContain(`-A ${chain} -j MASQUERADE`);
    expect(kept).not.toContain("-A POSTROUTING");
    expect(kept).not.toContain("-D POSTROUTING");
  });

  it("replaces a jump for another pod CIDR", () => {
    const old = `-A POSTROUTING -s 10.88.0.0/24 -m comment --comment "skiff-masq: skiff" -j ${chain}`;
    const moved = masqueradeScript({ chains: new Set([chain]), rules: [old, "-A POSTROUTING -s 10.1.0.0/16 -j OTHER"] }, o);
    expect(moved).toContain(`-D POSTROUTING -s 10.88.0.0/24 -m comment --comment "skiff-masq: skiff" -j ${chain}`);
    expect(moved).toContain(jump);
    expect(moved).not.toContain("OTHER");
  });

  it("gives every network its own chain name within iptables' 28 characters", () => {
    expect(masqueradeChain("a")).not.toBe(masqueradeChain("b"));
    expect(masqueradeChain("a-very-long-network-name-indeed").length).toBeLessThanOrEqual(28);
  });
});
