import { describe, expect, it } from "vitest";
import { cniChainName, removalScript } from "./iptables.ts";

describe("cniChainName", () => {
  it("matches the plugins' names (seen from bridge and portmap v1.1.1 for network sk-exp, id ctr1)", () => {
    expect(cniChainName("sk-exp", "ctr1")).toBe("CNI-70e134ddabdddb6011f2abc9");
    expect(cniChainName("sk-exp", "ctr1", "DN-")).toBe("CNI-DN-70e134ddabdddb6011f2a");
  });
});

describe("removalScript", () => {
  const masq = cniChainName("net", "pod1");
  const dn = cniChainName("net", "pod1", "DN-");
  const table = {
    chains: new Set([masq, dn, "CNI-HOSTPORT-DNAT", "CNI-other"]),
    rules: [
      `-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"net\\" id: \\"pod1\\"" -j ${masq}`,
      `-A POSTROUTING -s 10.0.0.3/32 -m comment --comment "name: \\"net\\" id: \\"pod2\\"" -j CNI-other`,
      `-A ${masq} -d 10.0.0.0/24 -m comment --comment "name: \\"net\\" id: \\"pod1\\"" -j ACCEPT`,
      `-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"pod1\\"" -m multiport --dports 8080 -j ${dn}`,
      `-A ${dn} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80`,
    ],
  };

  it("deletes the rules jumping to the chains, then flushes and deletes the chains, in one batch", () => {
    expect(removalScript(table, new Set([masq, dn]))).toBe(
      [
        "*nat",
        `-D POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \\"net\\" id: \\"pod1\\"" -j ${masq}`,
        `-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net\\" id: \\"pod1\\"" -m multiport --dports 8080 -j ${dn}`,
        `-F ${masq}`,
        `-F ${dn}`,
        `-X ${masq}`,
        `-X ${dn}`,
        "COMMIT",
        "",
      ].join("\n"),
    );
  });

  it("is undefined when there is nothing to remove", () => {
    expect(removalScript(table, new Set([cniChainName("net", "gone")]))).toBeUndefined();
  });
});
