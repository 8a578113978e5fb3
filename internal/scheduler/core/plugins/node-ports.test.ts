import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../framework.ts";
import { schedule, type Unschedulable } from "../schedule.ts";
import { makeNode, makePod } from "../testing.ts";
import { nodePorts } from "./node-ports.ts";

const only = { filters: [nodePorts], scorers: [] };
const onN1 = (ports: object[], hostNetwork = false) =>
  buildSnapshot([makeNode("n1")], [makePod("a", { node: "n1", ports: ports as never, hostNetwork })]);
const fits = (snap: ReturnType<typeof onN1>, ports: object[]) => "node" in schedule(makePod("p", { ports: ports as never }), snap, only);

describe("NodePorts", () => {
  it("rejects the same port and protocol on the same address", () => {
    const snap = onN1([{ hostPort: 80, containerPort: 8080, protocol: "TCP" }]);
    const r = schedule(makePod("p", { ports: [{ hostPort: 80, containerPort: 80, protocol: "TCP" }] }), snap, only) as Unschedulable;
    expect(r.message).toBe("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.");
    expect(fits(snap, [{ hostPort: 80, protocol: "UDP" }])).toBe(true);
    expect(fits(snap, [{ hostPort: 81, protocol: "TCP" }])).toBe(true);
    expect(fits(snap, [{ containerPort: 80, protocol: "TCP" }])).toBe(true); // no host port
  });

  it("0.0.0.0 conflicts with every address; distinct addresses do not conflict", () => {
    const specific = onN1([{ hostPort: 53, protocol: "UDP", hostIp: "10.0.0.1" }]);
    expect(fits(specific, [{ hostPort: 53, protocol: "UDP", hostIp: "10.0.0.2" }])).toBe(true);
    expect(fits(specific, [{ hostPort: 53, protocol: "UDP", hostIp: "10.0.0.1" }])).toBe(false);
    expect(fits(specific, [{ hostPort: 53, protocol: "UDP" }])).toBe(false);
    const wildcard = onN1([{ hostPort: 53, protocol: "UDP", hostIp: "0.0.0.0" }]);
    expect(fits(wildcard, [{ hostPort: 53, protocol: "UDP", hostIp: "10.0.0.2" }])).toBe(false);
  });

  it("treats a host-network pod's container ports as host ports", () => {
    const snap = onN1([{ containerPort: 9100, protocol: "TCP" }], true);
    expect(fits(snap, [{ hostPort: 9100, protocol: "TCP" }])).toBe(false);
  });
});
