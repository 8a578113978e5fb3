// Host ports: two pods cannot bind the same port and protocol on the same host address
// (0.0.0.0 takes the port on every address).
import type { FilterPlugin } from "../framework.ts";
import { portInUse } from "../node-info.ts";

export const REASON_PORTS = "node(s) didn't have free ports for the requested pod ports";

export const nodePorts: FilterPlugin = {
  name: "NodePorts",
  prepare(pod) {
    const ports = pod.hostPorts;
    if (ports.length === 0) return undefined;
    return (node) => {
      if (node.usedPorts.size === 0) return undefined;
      for (const p of ports) if (portInUse(node, p.ip, p.protocol, p.port)) return [REASON_PORTS];
      return undefined;
    };
  },
};
