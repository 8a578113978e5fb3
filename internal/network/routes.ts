// Host-gateway routes between nodes: on every node, one route per other node,
// `<its pod CIDR> via <its InternalIP>`, so that pods reach pods of other nodes by IP with no
// overlay. This only works when every node's InternalIP is on a subnet directly connected to
// every other node (one L2 segment): planRoutes() refuses other nodes and says why.
//
// Routes are marked with their own routing protocol number (ROUTE_PROTO), so that Skiff lists,
// replaces and deletes only routes it made, and repairs them idempotently (`ip route replace`).
// Policy routing (ip rule) is not looked at: only the main table decides what is "connected".

import { formatIPv4, parseIPv4 } from "./conflist.ts";
import { runChecked } from "./exec.ts";

/** The `proto` of the routes Skiff makes (unassigned in iproute2's rt_protos). */
export const ROUTE_PROTO = 157;

export interface Ipv4Net {
  network: number;
  prefix: number;
}

/** "10.1.2.0/24" → {network, prefix}; "default" is 0.0.0.0/0; a bare address is a /32. */
export function parseNet(s: string): Ipv4Net | undefined {
  if (s === "default") return { network: 0, prefix: 0 };
  const [addr, len, extra] = s.split("/");
  const ip = parseIPv4(addr ?? "");
  if (ip === undefined || extra !== undefined) return undefined;
  const prefix = len === undefined ? 32 : Number(len);
  if (!/^\d{1,2}$/.test(len ?? "32") || prefix > 32) return undefined;
  return { network: (ip & mask(prefix)) >>> 0, prefix };
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function formatNet(n: Ipv4Net): string {
  return `${formatIPv4(n.network)}/${n.prefix}`;
}

export function netContains(outer: Ipv4Net, ip: number): boolean {
  return ((ip & mask(outer.prefix)) >>> 0) === outer.network;
}

export function netsOverlap(a: Ipv4Net, b: Ipv4Net): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.network & mask(p)) >>> 0) === ((b.network & mask(p)) >>> 0);
}

/** A route of the main table, as `ip -j route show` prints it. */
export interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
}

/** What this node's routing table and addresses look like. */
export interface HostRoutes {
  routes: RouteEntry[];
  /** This node's own IPv4 addresses. */
  addresses: string[];
}

/** Another node as the route manager needs it. */
export interface PeerNode {
  name: string;
  podCidrs: string[];
  internalIP: string;
}

export interface PlannedRoute {
  dst: string;
  via: string;
  node: string;
}

/** Why a node's pod CIDR gets no route; `message` is for people. */
export interface SkippedNode {
  node: string;
  reason: "NotOnSegment" | "OwnAddress" | "Overlap" | "Conflict" | "Invalid";
  message: string;
}

export interface RoutePlan {
  /** Every route Skiff should have, sorted by destination. */
  want: PlannedRoute[];
  /** `ip -batch` lines that turn the current routes into `want` (empty when nothing to do). */
  commands: string[];
  skipped: SkippedNode[];
}

/** The most specific main-table route to `ip` other than Skiff's own (those lead to pods). */
export function routeTo(routes: RouteEntry[], ip: number): RouteEntry | undefined {
  let best: RouteEntry | undefined;
  let bestPrefix = -1;
  for (const r of routes) {
    if (r.protocol === String(ROUTE_PROTO)) continue;
    if (r.type && r.type !== "unicast") continue;
    const n = parseNet(r.dst);
    if (n && n.prefix > bestPrefix && netContains(n, ip)) {
      best = r;
      bestPrefix = n.prefix;
    }
  }
  return best;
}

/**
 * The routes this node should have to the other nodes' pod CIDRs, and the commands that get
 * there from `host`. A node is skipped (and reported) when its InternalIP is this node's own, is
 * reached through a router (not one L2 segment: a route via it would go nowhere), or its pod
 * CIDR overlaps this node's own, another node's, or a route Skiff did not make.
 */
export function planRoutes(opts: { self: string; ownPodCidr: string; peers: PeerNode[]; host: HostRoutes }): RoutePlan {
  const own = parseNet(opts.ownPodCidr);
  const ours = opts.host.routes.filter((r) => r.protocol === String(ROUTE_PROTO));
  const foreign = opts.host.routes.filter((r) => r.protocol !== String(ROUTE_PROTO) && r.dst !== "default");
  const local = new Set(opts.host.addresses);
  const want: PlannedRoute[] = [];
  const skipped: SkippedNode[] = [];

  for (const peer of [...opts.peers].sort((a, b) => a.name.localeCompare(b.name))) {
    if (peer.name === opts.self || peer.podCidrs.length === 0 || peer.internalIP === "") continue;
    const skip = (reason: SkippedNode["reason"], message: string) => skipped.push({ node: peer.name, reason, message });
    const ip = parseIPv4(peer.internalIP);
    if (ip === undefined) {
      skip("Invalid", `node ${peer.name}: InternalIP ${JSON.stringify(peer.internalIP)} is not an IPv4 address`);
      continue;
    }
    if (local.has(peer.internalIP)) {
      skip("OwnAddress", `node ${peer.name} has this node's own address ${peer.internalIP} as its InternalIP: no route to its pods`);
      continue;
    }
    const path = routeTo(opts.host.routes, ip);
    if (!path || path.gateway) {
      const how = path ? `reached via router ${path.gateway}${path.dev ? ` on ${path.dev}` : ""}` : "not reachable at all";
      skip(
        "NotOnSegment",
        `node ${peer.name}'s InternalIP ${peer.internalIP} is ${how}, not on a subnet of this node: host-gateway pod routing needs all nodes on one L2 segment (pod CIDR ${peer.podCidrs.join(", ")} left without a route)`,
      );
      continue;
    }
    for (const cidr of peer.podCidrs) {
      const net = parseNet(cidr);
      if (!net || !cidr.includes("/")) {
        skip("Invalid", `node ${peer.name}: pod CIDR ${JSON.stringify(cidr)} is not an IPv4 CIDR`);
        continue;
      }
      const dst = formatNet(net);
      if (own && netsOverlap(net, own)) {
        skip("Overlap", `node ${peer.name}'s pod CIDR ${dst} overlaps this node's own ${opts.ownPodCidr}: no route`);
        continue;
      }
      const taken = want.find((w) => netsOverlap(parseNet(w.dst)!, net));
      if (taken) {
        skip("Overlap", `node ${peer.name}'s pod CIDR ${dst} overlaps ${taken.dst} of node ${taken.node}: no route`);
        continue;
      }
      const clash = foreign.find((r) => r.dst === dst || (r.dst === formatIPv4(net.network) && net.prefix === 32));
      if (clash) {
        skip("Conflict", `node ${peer.name}'s pod CIDR ${dst} already has a route Skiff did not make (${clash.gateway ? `via ${clash.gateway}` : `dev ${clash.dev ?? "?"}`}): left alone`);
        continue;
      }
      want.push({ dst, via: peer.internalIP, node: peer.name });
    }
  }
  want.sort((a, b) => a.dst.localeCompare(b.dst));

  const commands: string[] = [];
  const have = new Map(ours.map((r) => [formatNet(parseNet(r.dst) ?? { network: 0, prefix: 32 }), r]));
  for (const w of want) {
    if (have.get(w.dst)?.gateway !== w.via) commands.push(`route replace ${w.dst} via ${w.via} proto ${ROUTE_PROTO}`);
  }
  for (const dst of have.keys()) {
    if (!want.some((w) => w.dst === dst)) commands.push(`route del ${dst} proto ${ROUTE_PROTO}`);
  }
  return { want, commands, skipped };
}

/** The main table and this node's addresses, through `ip -j` (in the caller's network namespace). */
export async function readHostRoutes(): Promise<HostRoutes> {
  const [routes, addrs] = await Promise.all([
    runChecked("ip", ["-j", "-4", "route", "show", "table", "main"]),
    runChecked("ip", ["-j", "-4", "addr", "show"]),
  ]);
  const addresses: string[] = [];
  for (const link of JSON.parse(addrs.stdout || "[]") as { addr_info?: { family?: string; local?: string }[] }[]) {
    for (const a of link.addr_info ?? []) if (a.family === "inet" && a.local) addresses.push(a.local);
  }
  return { routes: JSON.parse(routes.stdout || "[]") as RouteEntry[], addresses };
}

/**
 * Runs the plan's commands as one `ip -force -batch`. Every command runs even when one fails;
 * failures other than deleting a route that is already gone are thrown together.
 */
export async function applyRouteCommands(commands: string[]): Promise<void> {
  if (commands.length === 0) return;
  try {
    await runChecked("ip", ["-force", "-batch", "-"], { stdin: `${commands.join("\n")}\n` });
  } catch (err) {
    const text = String(err instanceof Error ? err.message : err);
    const real = text.split("\n").filter((l) => /Error|RTNETLINK/.test(l) && !/No such process/.test(l));
    if (real.length > 0) throw new Error(`ip route: ${real.join("; ")}`, { cause: err });
  }
}

/** Skiff's routes in the main table (what a test or a clean-up looks at). */
export async function listSkiffRoutes(): Promise<RouteEntry[]> {
  const r = await runChecked("ip", ["-j", "-4", "route", "show", "table", "main", "proto", String(ROUTE_PROTO)]);
  return JSON.parse(r.stdout || "[]") as RouteEntry[];
}
