// The node's CNI network configuration list: `bridge` (with `host-local` IPAM over the node's pod
// CIDR) followed by `portmap` for hostPorts. Pure: builds and validates the JSON.
import { formatIPv4, parseIPv4, parseIPv4Cidr, type Ipv4Cidr } from "../util/ipv4.ts";

export { formatIPv4, parseIPv4 };

/** The CNI spec version we speak; Debian's plugins (v1.1.1) accept 0.1.0 … 1.0.0. */
export const CNI_VERSION = "1.0.0";

export interface BridgeNetworkOptions {
  /** CNI network name; also names host-local's directory and every iptables comment. */
  name: string;
  /** Linux bridge device (at most 15 characters). Default "skiff0". */
  bridge?: string;
  /** The node's pod CIDR (IPv4), e.g. "10.88.0.0/24". */
  podCidr: string;
  /** The bridge's address; default the CIDR's first host address (.1 for a /24). */
  gateway?: string;
  mtu?: number;
  /** Masquerade pod traffic leaving the pod CIDR. Default true. */
  ipMasq?: boolean;
}

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
}

export interface BuildConflistOptions {
  network: BridgeNetworkOptions;
  /** Add the portmap plugin (hostPorts). */
  portmap: boolean;
  /** host-local's state directory (it keeps one file per allocated IP under <dataDir>/<name>/). */
  ipamDataDir: string;
}

const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME = /^[^\s/:]{1,15}$/;


export type Cidr = Ipv4Cidr;

export function parseCidr(s: string): Cidr {
  const c = parseIPv4Cidr(s);
  if ("error" in c) {
    throw new Error(
      c.error === "format"
        ? `invalid pod CIDR ${JSON.stringify(s)}: want an IPv4 CIDR with a prefix from /8 to /30, e.g. 10.88.0.0/24`
        : `invalid pod CIDR ${s}: host bits set (did you mean ${c.meant}?)`,
    );
  }
  return c;
}

export function buildConflist(opts: BuildConflistOptions): NetworkConfigList {
  const net = opts.network;
  if (!NETWORK_NAME.test(net.name)) {
    throw new Error(`invalid CNI network name ${JSON.stringify(net.name)}: letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
  const bridge = net.bridge ?? "skiff0";
  if (!IFNAME.test(bridge)) throw new Error(`invalid bridge name ${JSON.stringify(bridge)}: at most 15 characters, no spaces, "/" or ":"`);
  const cidr = parseCidr(net.podCidr);
  let gateway = formatIPv4(cidr.first);
  if (net.gateway !== undefined) {
    const gw = parseIPv4(net.gateway);
    if (gw === undefined || gw < cidr.first || gw > cidr.last) {
      throw new Error(`invalid gateway ${JSON.stringify(net.gateway)}: not a host address of ${net.podCidr}`);
    }
    gateway = net.gateway;
  }
  if (net.mtu !== undefined && (!Number.isInteger(net.mtu) || net.mtu < 576 || net.mtu > 65535)) {
    throw new Error(`invalid mtu ${net.mtu}: want an integer from 576 to 65535`);
  }

  const bridgeConf: PluginConf = {
    type: "bridge",
    bridge,
    isGateway: true,
    ipMasq: net.ipMasq ?? true,
    hairpinMode: true,
    ...(net.mtu !== undefined ? { mtu: net.mtu } : {}),
    ipam: {
      type: "host-local",
      ranges: [[{ subnet: `${formatIPv4(cidr.network)}/${cidr.prefix}`, gateway }]],
      routes: [{ dst: "0.0.0.0/0" }],
      dataDir: opts.ipamDataDir,
    },
  };
  const plugins: PluginConf[] = [bridgeConf];
  // snat: masquerade hairpin and localhost traffic to hostPorts, so 127.0.0.1:<hostPort> works.
  if (opts.portmap) plugins.push({ type: "portmap", capabilities: { portMappings: true }, snat: true });
  return { cniVersion: CNI_VERSION, name: net.name, plugins };
}
