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
//                         any other address of the Service range ─► reject (TCP reset / ICMP
//                         host unreachable): a deleted Service's IP must not follow the default route
//   postrouting: marked packets are masqueraded (hairpin, NodePort)
//
// sessionAffinity ClientIP: every backend has a set `aff-…` of client addresses (with the
// Service's timeout); its ep- chain adds or refreshes the client, and the svc- chain sends a
// client found in a backend's set to that backend before spreading the others. Traffic policy
// "Local": `lcl-…` spreads over this node's backends only; NodePort traffic to it is not
// masqueraded (the backend sees the client's address), and without a local backend NodePort
// traffic is dropped and ClusterIP traffic rejected.
import { formatIPv4, parseIPv4Cidr } from "../../util/ipv4.ts";
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
  /**
   * This node's pod CIDR: its pods reaching a NodePort with externalTrafficPolicy Local go to
   * every backend (as kube-proxy: the policy is about keeping outside clients' addresses).
   */
  podCidr?: string;
  /**
   * The cluster's Service range (the apiserver's --service-cluster-ip-range). Traffic to an
   * address in it that no Service port holds is rejected instead of leaving by the default route.
   */
  serviceCidr?: string;
}

/** A Service range as nft writes it, or an error naming the flag and what to pass. */
export function normalizeServiceCidr(s: string): string {
  const c = parseIPv4Cidr(s, 8, 32);
  if ("error" in c) {
    throw new Error(
      c.error === "format"
        ? `--service-cluster-ip-range must be an IPv4 CIDR, e.g. 10.96.0.0/12 (the apiserver's value), got ${JSON.stringify(s)}`
        : `--service-cluster-ip-range ${s} has host bits set (did you mean ${c.meant}?)`,
    );
  }
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

/** The table's content in a form two versions of can be compared: maps and chains by name. */
export interface TableState {
  table: string;
  /** Set and map elements by set/map name: key → value ("" for a set). */
  elements: Record<ElementSet, Map<string, string>>;
  /** Regular chains (not the hook chains, which never change): name → rules. */
  chains: Map<string, string[]>;
  /** Session affinity sets: name → timeout in seconds. */
  affinitySets: Map<string, number>;
}

export interface Ruleset {
  /** Input for `nft -f -` that writes the whole table. */
  text: string;
  state: TableState;
  /** Rules in chains plus elements of maps and sets: the size of what the kernel holds. */
  rules: number;
  /** Service ports left out (a second Service on the same IP and port, a NodePort taken twice). */
  skipped: Skipped[];
}

const ELEMENT_SETS = {
  "node-ips": "set",
  "cluster-ips": "ipv4_addr . inet_proto . inet_service : verdict",
  "node-ports": "inet_proto . inet_service : verdict",
  "no-endpoint-cluster-ips": "ipv4_addr . inet_proto . inet_service : verdict",
  "no-endpoint-node-ports": "inet_proto . inet_service : verdict",
} as const;
type ElementSet = keyof typeof ELEMENT_SETS;

const M = `0x${MASQUERADE_MARK.toString(16)}`;

/** The base chains: hooked into netfilter, the same in every version of the table. */
const HOOKS: [string, string, string, number, string][] = [
  ["nat-prerouting", "nat", "prerouting", -100, "jump services"],
  ["nat-output", "nat", "output", -100, "jump services"],
  ["nat-postrouting", "nat", "postrouting", 100, `meta mark & ${M} == ${M} meta mark set meta mark ^ ${M} masquerade fully-random`],
  // After DNAT (-100): what still goes to a service address found no backend.
  ["filter-prerouting", "filter", "prerouting", -90, "ct state new jump no-endpoints"],
  ["filter-output", "filter", "output", -90, "ct state new jump no-endpoints"],
];

/** An nft identifier from Kubernetes names (which already are [a-z0-9.-]; anything else becomes "_"). */
function ident(...parts: string[]): string {
  return parts.map((p) => p.replace(/[^A-Za-z0-9_.-]/g, "_")).join("/");
}

const portTag = (p: ServicePortRules) => `${p.protocol}-${p.port}`;
const svcChain = (p: ServicePortRules) => `svc-${ident(p.namespace, p.name, portTag(p))}`;
const extChain = (p: ServicePortRules) => `ext-${ident(p.namespace, p.name, portTag(p))}`;
const epChain = (p: ServicePortRules, b: Backend) => `ep-${ident(p.namespace, p.name, portTag(p), `${b.ip}-${b.port}`)}`;
const localChain = (p: ServicePortRules) => `lcl-${ident(p.namespace, p.name, portTag(p))}`;
/** Name prefix of the session affinity sets (kernel.ts reads them back before a whole write). */
export const AFFINITY_PREFIX = "aff-";
const affinitySet = (p: ServicePortRules, b: Backend) => `${AFFINITY_PREFIX}${ident(p.namespace, p.name, portTag(p), `${b.ip}-${b.port}`)}`;

/** A client already in a backend's affinity set goes there; the others spread evenly. */
function spread(p: ServicePortRules, backends: readonly Backend[]): string[] {
  const eps = backends.map((b) => epChain(p, b));
  const sticky = p.affinitySeconds > 0 ? backends.map((b) => `ip saddr @${affinitySet(p, b)} goto ${epChain(p, b)}`) : [];
  return [...sticky, eps.length === 1 ? `goto ${eps[0]}` : `numgen random mod ${eps.length} vmap { ${eps.map((c, i) => `${i} : goto ${c}`).join(", ")} }`];
}

function inCidr(ip: string, cidr: string | undefined): boolean {
  if (!cidr) return false;
  const c = parseCidr(cidr);
  const n = parseIPv4(ip);
  return n !== undefined && n >= c.network && n <= c.last + 1;
}

const element = (k: string, v: string) => (v === "" ? k : `${k} : ${v}`);

/** `table ip T {}` then `delete table ip T`: removes the table, or does nothing if there is none. */
export function deleteTableText(table: string): string {
  return `table ip ${table} {}\ndelete table ip ${table}\n`;
}

export function buildRuleset(model: ProxyModel, opts: RulesetOptions): Ruleset {
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(opts.table)) throw new Error(`invalid nft table name ${JSON.stringify(opts.table)}`);
  for (const p of opts.nodeAddresses) {
    if (parseIPv4(p) === undefined) throw new Error(`invalid node address ${JSON.stringify(p)}: want IPv4`);
  }
  if (opts.masqueradePodCidr) parseCidr(opts.masqueradePodCidr);
  if (opts.podCidr) parseCidr(opts.podCidr);
  const serviceCidr = opts.serviceCidr ? normalizeServiceCidr(opts.serviceCidr) : undefined;
  const skipped: Skipped[] = [];
  const el = Object.fromEntries(Object.keys(ELEMENT_SETS).map((k) => [k, new Map<string, string>()])) as TableState["elements"];
  const chains = new Map<string, string[]>();
  const affinitySets = new Map<string, number>();
  chains.set("services", ["ip daddr . meta l4proto . th dport vmap @cluster-ips", "ip daddr @node-ips meta l4proto . th dport vmap @node-ports"]);
  chains.set("no-endpoints", [
    "ip daddr . meta l4proto . th dport vmap @no-endpoint-cluster-ips",
    "ip daddr @node-ips meta l4proto . th dport vmap @no-endpoint-node-ports",
    // Served addresses were DNATed away before this hook: what is left is no Service's.
    ...(serviceCidr ? [`ip daddr ${serviceCidr} goto reject-unallocated`] : []),
  ]);
  chains.set("reject-no-endpoints", ["meta l4proto tcp reject with tcp reset", "reject with icmp type port-unreachable"]);
  if (serviceCidr) chains.set("reject-unallocated", ["meta l4proto tcp reject with tcp reset", "reject with icmp type host-unreachable"]);

  for (const p of model.ports) {
    const who = `${p.namespace}/${p.name}`;
    const ipKey = `${p.clusterIP} . ${p.protocol} . ${p.port}`;
    const npKey = `${p.protocol} . ${p.nodePort}`;
    const hasIP = p.clusterIP !== "" && !el["cluster-ips"].has(ipKey) && !el["no-endpoint-cluster-ips"].has(ipKey);
    const hasNodePort = p.nodePort !== 0 && !el["node-ports"].has(npKey) && !el["no-endpoint-node-ports"].has(npKey);
    if (p.clusterIP !== "" && !hasIP) skipped.push({ service: who, reason: `${p.clusterIP}:${p.port}/${p.protocol} is already another Service's` });
    if (p.nodePort !== 0 && !hasNodePort) skipped.push({ service: who, reason: `nodePort ${p.nodePort}/${p.protocol} is already another Service's` });
    if (!hasIP && !hasNodePort) continue;

    if (p.backends.length === 0) {
      if (hasIP) el["no-endpoint-cluster-ips"].set(ipKey, "goto reject-no-endpoints");
      if (hasNodePort) el["no-endpoint-node-ports"].set(npKey, "goto reject-no-endpoints");
      continue;
    }
    const local = p.backends.filter((b) => b.local);
    if (hasIP) {
      if (!p.internalLocal) el["cluster-ips"].set(ipKey, `goto ${svcChain(p)}`);
      else if (local.length > 0) el["cluster-ips"].set(ipKey, `goto ${localChain(p)}`);
      else el["no-endpoint-cluster-ips"].set(ipKey, "goto reject-no-endpoints");
    }
    if (hasNodePort) {
      el["node-ports"].set(npKey, `goto ${extChain(p)}`);
      if (!p.externalLocal) {
        // Masquerade so that a backend on another node answers through this one.
        chains.set(extChain(p), [`meta mark set meta mark | ${M}`, `goto ${svcChain(p)}`]);
      } else {
        // Local: outside clients go to this node's backends unmasqueraded (they keep their
        // address) or, without one here, are dropped as kube-proxy does, so a client's retry or a
        // load balancer moves on. This node's pods and the node itself go everywhere, as Cluster.
        chains.set(extChain(p), [
          ...(opts.podCidr ? [`ip saddr ${opts.podCidr} goto ${svcChain(p)}`] : []),
          `fib saddr type local meta mark set meta mark | ${M}`,
          `fib saddr type local goto ${svcChain(p)}`,
          local.length > 0 ? `goto ${localChain(p)}` : "drop",
        ]);
      }
    }
    const viaCluster = (hasIP && !p.internalLocal) || hasNodePort;
    const viaLocal = local.length > 0 && ((hasIP && p.internalLocal) || (hasNodePort && p.externalLocal));
    if (viaCluster) chains.set(svcChain(p), spread(p, p.backends));
    if (viaLocal) chains.set(localChain(p), spread(p, local));
    for (const b of viaCluster ? p.backends : local) {
      // Hairpin: a pod reaching itself must not see its own address as the source.
      const from = opts.masqueradePodCidr && inCidr(b.ip, opts.masqueradePodCidr) ? opts.masqueradePodCidr : b.ip;
      const remember = p.affinitySeconds > 0 ? [`update @${affinitySet(p, b)} { ip saddr }`] : [];
      if (p.affinitySeconds > 0) affinitySets.set(affinitySet(p, b), p.affinitySeconds);
      chains.set(epChain(p, b), [`ip saddr ${from} meta mark set meta mark | ${M}`, ...remember, `meta l4proto ${p.protocol} dnat to ${b.ip}:${b.port}`]);
    }
  }
  for (const ip of [...new Set(opts.nodeAddresses)].sort((a, b) => parseIPv4(a)! - parseIPv4(b)!)) el["node-ips"].set(ip, "");

  const state: TableState = { table: opts.table, elements: el, chains, affinitySets };
  let rules = HOOKS.length;
  for (const m of Object.values(el)) rules += m.size;
  for (const body of chains.values()) rules += body.length;
  return { text: renderTable(state), state, rules, skipped };
}

/** A client an affinity set holds, and the seconds until it is forgotten. */
export interface AffinityClient {
  ip: string;
  expiresSeconds: number;
}

const affinityDecl = (timeout: number) => `type ipv4_addr; flags dynamic,timeout; timeout ${timeout}s;`;

/**
 * The whole table, replacing whatever table of that name there is, in one transaction.
 * `carried`: the clients of the affinity sets as the kernel holds them now, so that they stay on
 * their backends across a whole write (none longer than the set's timeout, which may be new).
 */
export function renderTable(state: TableState, carried?: ReadonlyMap<string, readonly AffinityClient[]>): string {
  const out = [deleteTableText(state.table), `table ip ${state.table} {\n\tcomment "skiff service proxy: written as a whole by the node agent"\n`];
  for (const [name, type] of Object.entries(ELEMENT_SETS) as [ElementSet, string][]) {
    const items = [...state.elements[name]].map(([k, v]) => `\t\t\t${element(k, v)},\n`).join("");
    const decl = type === "set" ? `set ${name} {\n\t\ttype ipv4_addr\n` : `map ${name} {\n\t\ttype ${type}\n`;
    out.push(`\t${decl}${items ? `\t\telements = {\n${items}\t\t}\n` : ""}\t}\n`);
  }
  for (const [name, timeout] of state.affinitySets) {
    const items = (carried?.get(name) ?? []).filter((c) => c.expiresSeconds >= 1).map((c) => `${c.ip} expires ${Math.min(c.expiresSeconds, timeout)}s`);
    out.push(`\tset ${name} {\n\t\t${affinityDecl(timeout)}\n${items.length > 0 ? `\t\telements = { ${items.join(", ")} }\n` : ""}\t}\n`);
  }
  for (const [name, type, hook, priority, rule] of HOOKS) {
    out.push(`\tchain ${name} {\n\t\ttype ${type} hook ${hook} priority ${priority}; policy accept;\n\t\t${rule}\n\t}\n`);
  }
  for (const [name, body] of state.chains) out.push(`\tchain ${name} {\n${body.map((l) => `\t\t${l}\n`).join("")}\t}\n`);
  out.push("}\n");
  return out.join("");
}

const sameRules = (a: string[] | undefined, b: string[]) => a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);

/** Chains referring to others go first when chains are deleted: ext- → svc-/lcl- → ep-. */
const deleteOrder = (name: string) => (name.startsWith("ext-") ? 0 : name.startsWith("svc-") || name.startsWith("lcl-") ? 1 : 2);

/**
 * The changes from table `prev` to `next` as one nft transaction ("" when there are none): new
 * chains, rewritten chains, element changes, then chains nothing refers to any more. Far less
 * work for the kernel and nft than the whole table when one Service of thousands changed. It
 * assumes the kernel holds `prev`: if someone changed the table, the transaction fails as a
 * whole and the caller writes the whole table instead. Undefined when only a whole write will
 * do (an affinity set's timeout changed: a set's timeout cannot be altered in place).
 */
export function renderChanges(prev: TableState, next: TableState): string | undefined {
  const t = next.table;
  const out: string[] = [];
  for (const [name, timeout] of next.affinitySets) {
    const old = prev.affinitySets.get(name);
    if (old === undefined) out.push(`add set ip ${t} ${name} { ${affinityDecl(timeout)} }\n`);
    else if (old !== timeout) return undefined;
  }
  const rules: string[] = [];
  for (const [name, body] of next.chains) {
    const old = prev.chains.get(name);
    if (sameRules(old, body)) continue;
    out.push(old === undefined ? `add chain ip ${t} ${name}\n` : `flush chain ip ${t} ${name}\n`);
    for (const r of body) rules.push(`add rule ip ${t} ${name} ${r}\n`);
  }
  out.push(...rules);
  for (const name of Object.keys(ELEMENT_SETS) as ElementSet[]) {
    const a = prev.elements[name];
    const b = next.elements[name];
    const gone = [...a].filter(([k, v]) => b.get(k) !== v).map(([k]) => k);
    const added = [...b].filter(([k, v]) => a.get(k) !== v).map(([k, v]) => element(k, v));
    if (gone.length > 0) out.push(`delete element ip ${t} ${name} { ${gone.join(", ")} }\n`);
    if (added.length > 0) out.push(`add element ip ${t} ${name} { ${added.join(", ")} }\n`);
  }
  const removed = [...prev.chains.keys()].filter((n) => !next.chains.has(n)).sort((a, b) => deleteOrder(a) - deleteOrder(b));
  for (const name of removed) out.push(`delete chain ip ${t} ${name}\n`);
  for (const name of prev.affinitySets.keys()) if (!next.affinitySets.has(name)) out.push(`delete set ip ${t} ${name}\n`);
  return out.join("");
}
