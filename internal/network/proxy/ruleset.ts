// The one nftables table the proxy owns, written as text for `nft -f`: a pure function of the
// service ports (model.ts), the node's addresses and a few options. The text deletes the table
// and creates it again in one transaction, so the kernel switches from the old rules to the new
// ones at once (no moment without rules) and nothing else on the host is touched.
//
// Packet path (names as in the generated text):
//
//   prerouting (pods, other hosts) ─┐                       ┌─ ep-…  [mark if hairpin] dnat to ip:port
//   output (this host)            ──┴─► services ─► svc-… ──┤  numgen random mod N: one of N backends
//        ip . proto . port  @cluster-ips                   └─ ep-…
//        node-ips + proto . port  @node-ports ─► ext-… (mark) ─► svc-…
//   then, still unNATed:  no-endpoints ─► reject (TCP reset / ICMP port unreachable)
//   postrouting: marked packets are masqueraded (hairpin, NodePort)
import { parseCidr, parseIPv4 } from "../conflist.ts";
import type { Backend, ProxyModel, ServicePortRules, Skipped } from "./model.ts";

/** The packet mark bit that asks postrouting to masquerade (the value Kubernetes uses too). */
export const MASQUERADE_MARK = 0x4000;

export interface RulesetOptions {
  /** nft table name (family ip). */
  table: string;
  /** Addresses NodePorts answer on (IPv4, not loopback). */
  nodeAddresses: readonly string[];
  /**
   * The node's pod CIDR, when traffic from a pod to a backend on the same bridge must be
   * masqueraded: without br_netfilter (bridge-nf-call-iptables=0) the backend's reply is switched
   * on the bridge straight to the client pod and never meets conntrack to be un-NATed.
   */
  masqueradePodCidr?: string;
}

export interface Ruleset {
  /** Input for `nft -f -`. */
  text: string;
  /** Rules in chains plus elements of maps and sets: the size of what the kernel holds. */
  rules: number;
  /** Service ports left out (a second Service on the same IP and port, a NodePort taken twice). */
  skipped: Skipped[];
}

const M = `0x${MASQUERADE_MARK.toString(16)}`;

/** An nft identifier from Kubernetes names (which already are [a-z0-9.-]; anything else becomes "_"). */
function ident(...parts: string[]): string {
  return parts.map((p) => p.replace(/[^A-Za-z0-9_.-]/g, "_")).join("/");
}

const portTag = (p: ServicePortRules) => `${p.protocol}-${p.port}`;
const svcChain = (p: ServicePortRules) => `svc-${ident(p.namespace, p.name, portTag(p))}`;
const extChain = (p: ServicePortRules) => `ext-${ident(p.namespace, p.name, portTag(p))}`;
const epChain = (p: ServicePortRules, b: Backend) => `ep-${ident(p.namespace, p.name, portTag(p), `${b.ip}-${b.port}`)}`;

function inCidr(ip: string, cidr: string | undefined): boolean {
  if (!cidr) return false;
  const c = parseCidr(cidr);
  const n = parseIPv4(ip);
  return n !== undefined && n >= c.network && n <= c.last + 1;
}

function elements(items: string[]): string {
  return items.length === 0 ? "" : `\t\telements = {\n${items.map((e) => `\t\t\t${e},`).join("\n")}\n\t\t}\n`;
}

/** `table ip T {}` then `delete table ip T`: removes the table, or does nothing if there is none. */
export function deleteTableText(table: string): string {
  return `table ip ${table} {}\ndelete table ip ${table}\n`;
}

export function buildRuleset(model: ProxyModel, opts: RulesetOptions): Ruleset {
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(opts.table)) throw new Error(`invalid nft table name ${JSON.stringify(opts.table)}`);
  const skipped: Skipped[] = [];
  const clusterIPs: string[] = [];
  const nodePorts: string[] = [];
  const noEndpointIPs: string[] = [];
  const noEndpointNodePorts: string[] = [];
  const chains: string[] = [];
  const takenIPs = new Set<string>();
  const takenNodePorts = new Set<string>();
  let rules = 0;

  const chain = (name: string, body: string[]) => {
    rules += body.length;
    chains.push(`\tchain ${name} {\n${body.map((l) => `\t\t${l}\n`).join("")}\t}\n`);
  };

  for (const p of opts.nodeAddresses) {
    if (parseIPv4(p) === undefined) throw new Error(`invalid node address ${JSON.stringify(p)}: want IPv4`);
  }
  for (const p of opts.masqueradePodCidr ? [opts.masqueradePodCidr] : []) parseCidr(p);

  for (const p of model.ports) {
    const who = `${p.namespace}/${p.name}`;
    const ipKey = `${p.clusterIP} . ${p.protocol} . ${p.port}`;
    const npKey = `${p.protocol} . ${p.nodePort}`;
    const hasIP = p.clusterIP !== "" && !takenIPs.has(ipKey);
    const hasNodePort = p.nodePort !== 0 && !takenNodePorts.has(npKey);
    if (p.clusterIP !== "" && !hasIP) skipped.push({ service: who, reason: `${p.clusterIP}:${p.port}/${p.protocol} is already another Service's` });
    if (p.nodePort !== 0 && !hasNodePort) skipped.push({ service: who, reason: `nodePort ${p.nodePort}/${p.protocol} is already another Service's` });
    if (!hasIP && !hasNodePort) continue;
    if (hasIP) takenIPs.add(ipKey);
    if (hasNodePort) takenNodePorts.add(npKey);

    if (p.backends.length === 0) {
      if (hasIP) noEndpointIPs.push(`${ipKey} : goto reject-no-endpoints`);
      if (hasNodePort) noEndpointNodePorts.push(`${npKey} : goto reject-no-endpoints`);
      continue;
    }
    if (hasIP) clusterIPs.push(`${ipKey} : goto ${svcChain(p)}`);
    if (hasNodePort) {
      nodePorts.push(`${npKey} : goto ${extChain(p)}`);
      // Masquerade so that a backend on another node answers through this one.
      chain(extChain(p), [`meta mark set meta mark | ${M}`, `goto ${svcChain(p)}`]);
    }
    const eps = p.backends.map((b) => epChain(p, b));
    chain(
      svcChain(p),
      eps.length === 1 ? [`goto ${eps[0]}`] : [`numgen random mod ${eps.length} vmap { ${eps.map((c, i) => `${i} : goto ${c}`).join(", ")} }`],
    );
    for (const b of p.backends) {
      // Hairpin: a pod reaching itself must not see its own address as the source.
      const from = opts.masqueradePodCidr && inCidr(b.ip, opts.masqueradePodCidr) ? opts.masqueradePodCidr : b.ip;
      chain(epChain(p, b), [`ip saddr ${from} meta mark set meta mark | ${M}`, `meta l4proto ${p.protocol} dnat to ${b.ip}:${b.port}`]);
    }
  }

  const nodeIPs = [...new Set(opts.nodeAddresses)].sort((a, b) => parseIPv4(a)! - parseIPv4(b)!);
  rules += nodeIPs.length + clusterIPs.length + nodePorts.length + noEndpointIPs.length + noEndpointNodePorts.length;
  const fixed = [
    `\tset node-ips {\n\t\ttype ipv4_addr\n${elements(nodeIPs)}\t}\n`,
    `\tmap cluster-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n${elements(clusterIPs)}\t}\n`,
    `\tmap node-ports {\n\t\ttype inet_proto . inet_service : verdict\n${elements(nodePorts)}\t}\n`,
    `\tmap no-endpoint-cluster-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n${elements(noEndpointIPs)}\t}\n`,
    `\tmap no-endpoint-node-ports {\n\t\ttype inet_proto . inet_service : verdict\n${elements(noEndpointNodePorts)}\t}\n`,
  ];
  const hooks: string[] = [];
  const hook = (name: string, type: string, at: string, priority: number, body: string[]) => {
    rules += body.length;
    hooks.push(`\tchain ${name} {\n\t\ttype ${type} hook ${at} priority ${priority}; policy accept;\n${body.map((l) => `\t\t${l}\n`).join("")}\t}\n`);
  };
  hook("nat-prerouting", "nat", "prerouting", -100, ["jump services"]);
  hook("nat-output", "nat", "output", -100, ["jump services"]);
  hook("nat-postrouting", "nat", "postrouting", 100, [`meta mark & ${M} == ${M} meta mark set meta mark ^ ${M} masquerade fully-random`]);
  // After DNAT (-100): what still goes to a service address found no backend.
  hook("filter-prerouting", "filter", "prerouting", -90, ["ct state new jump no-endpoints"]);
  hook("filter-output", "filter", "output", -90, ["ct state new jump no-endpoints"]);
  chain("services", ["ip daddr . meta l4proto . th dport vmap @cluster-ips", "ip daddr @node-ips meta l4proto . th dport vmap @node-ports"]);
  chain("no-endpoints", [
    "ip daddr . meta l4proto . th dport vmap @no-endpoint-cluster-ips",
    "ip daddr @node-ips meta l4proto . th dport vmap @no-endpoint-node-ports",
  ]);
  chain("reject-no-endpoints", ["meta l4proto tcp reject with tcp reset", "reject with icmp type port-unreachable"]);

  const text =
    deleteTableText(opts.table) +
    `table ip ${opts.table} {\n\tcomment "skiff service proxy: written as a whole by the node agent"\n` +
    fixed.join("") +
    hooks.join("") +
    chains.join("") +
    "}\n";
  return { text, rules, skipped };
}
