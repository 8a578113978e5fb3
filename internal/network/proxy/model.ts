// From Services and their Endpoints to the flat list the rules are written from: one entry per
// service port, with the ready backends (ip:port) it spreads over. Pure.
//
// Matching follows Kubernetes: an EndpointPort serves the ServicePort with the same name and
// protocol (the Endpoints controller already resolved named targetPorts to numbers); only
// `addresses` (ready) are used, never `notReadyAddresses`. A backend is local when its address's
// nodeName is the proxy's node (traffic policies "Local").
import type { Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { parseIPv4 } from "../conflist.ts";

export type Protocol = "tcp" | "udp";

export interface Backend {
  ip: string;
  port: number;
  /** On the proxy's own node (the Endpoints address's nodeName). */
  local: boolean;
}

export interface ServicePortRules {
  namespace: string;
  name: string;
  /** The ServicePort's name ("" for a single unnamed port). */
  portName: string;
  protocol: Protocol;
  /** "" when the Service has no virtual IP (headless, ExternalName, not allocated yet). */
  clusterIP: string;
  port: number;
  /** 0: none. */
  nodePort: number;
  /** Ready backends, sorted by ip then port, no duplicates. */
  backends: Backend[];
  /** sessionAffinity ClientIP: seconds a client address stays on its backend; 0: no affinity. */
  affinitySeconds: number;
  /** externalTrafficPolicy Local: NodePort traffic only to local backends, unmasqueraded. */
  externalLocal: boolean;
  /** internalTrafficPolicy Local: ClusterIP traffic only to local backends. */
  internalLocal: boolean;
}

export interface Skipped {
  service: string;
  reason: string;
}

export interface ProxyModel {
  ports: ServicePortRules[];
  /** Service ports the proxy cannot program, with why (logged by the caller). */
  skipped: Skipped[];
}

const PROTOCOLS: Record<string, Protocol | undefined> = { "": "tcp", TCP: "tcp", UDP: "udp" };

/** Kubernetes' "no virtual IP" values. */
const NO_CLUSTER_IP = new Set(["", "None"]);

const key = (namespace: string, name: string) => `${namespace}/${name}`;

function compareBackends(a: Backend, b: Backend): number {
  const x = parseIPv4(a.ip) ?? 0;
  const y = parseIPv4(b.ip) ?? 0;
  return x !== y ? x - y : a.port - b.port;
}

/** The ready backends of one service port, found in the Service's Endpoints. */
function backendsFor(ep: Endpoints | undefined, portName: string, protocol: Protocol, nodeName: string | undefined): Backend[] {
  const seen = new Map<string, Backend>();
  for (const subset of ep?.subsets ?? []) {
    for (const p of subset.ports) {
      if (p.name !== portName || PROTOCOLS[p.protocol] !== protocol || p.port < 1 || p.port > 65535) continue;
      for (const a of subset.addresses) {
        if (parseIPv4(a.ip) === undefined) continue; // IPv6 or junk: this proxy is IPv4 only
        seen.set(`${a.ip}:${p.port}`, { ip: a.ip, port: p.port, local: nodeName !== undefined && a.nodeName === nodeName });
      }
    }
  }
  return [...seen.values()].sort(compareBackends);
}

/** Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_AFFINITY_SECONDS = 10_800;

/** `nodeName`: the proxy's node, for traffic policies "Local" (none: no backend is local). */
export function buildModel(services: readonly Service[], endpoints: readonly Endpoints[], nodeName?: string): ProxyModel {
  const eps = new Map(endpoints.map((e) => [key(e.metadata?.namespace ?? "", e.metadata?.name ?? ""), e]));
  const ports: ServicePortRules[] = [];
  const skipped: Skipped[] = [];
  for (const svc of services) {
    const namespace = svc.metadata?.namespace ?? "";
    const name = svc.metadata?.name ?? "";
    const spec = svc.spec;
    if (!spec || spec.type === "ExternalName") continue;
    const clusterIP = NO_CLUSTER_IP.has(spec.clusterIp) ? "" : spec.clusterIp;
    if (clusterIP !== "" && parseIPv4(clusterIP) === undefined) {
      skipped.push({ service: key(namespace, name), reason: `clusterIP ${clusterIP} is not an IPv4 address` });
      continue;
    }
    const withNodePorts = spec.type === "NodePort" || spec.type === "LoadBalancer";
    for (const sp of spec.ports) {
      const protocol = PROTOCOLS[sp.protocol];
      if (!protocol) {
        skipped.push({ service: key(namespace, name), reason: `port ${sp.port}/${sp.protocol}: only TCP and UDP are proxied` });
        continue;
      }
      const nodePort = withNodePorts ? sp.nodePort : 0;
      if (clusterIP === "" && nodePort === 0) continue;
      ports.push({
        namespace,
        name,
        portName: sp.name,
        protocol,
        clusterIP,
        port: sp.port,
        nodePort,
        backends: backendsFor(eps.get(key(namespace, name)), sp.name, protocol, nodeName),
        affinitySeconds: spec.sessionAffinity === "ClientIP" ? spec.sessionAffinityConfig?.clientIp?.timeoutSeconds || DEFAULT_AFFINITY_SECONDS : 0,
        externalLocal: nodePort !== 0 && spec.externalTrafficPolicy === "Local",
        internalLocal: spec.internalTrafficPolicy === "Local",
      });
    }
  }
  ports.sort((a, b) => (a.namespace + "/" + a.name < b.namespace + "/" + b.name ? -1 : a.namespace + "/" + a.name > b.namespace + "/" + b.name ? 1 : a.port - b.port || (a.protocol < b.protocol ? -1 : 1)));
  return { ports, skipped };
}

/** Identity of a service port across syncs. */
export function portId(p: ServicePortRules): string {
  return `${p.namespace}/${p.name}/${p.protocol}-${p.port}`;
}

export interface UdpFlush {
  /** Entries DNATed to a backend that is gone: `reply-src` backend, original destination the service. */
  removedBackends: { clusterIP: string; port: number; nodePort: number; backend: Backend }[];
  /** Service ports that had no backend (packets were rejected) and now have one. */
  newlyServed: { clusterIP: string; port: number; nodePort: number }[];
}

/**
 * What conntrack must forget after the rules changed from `before` to `after`: UDP has no
 * connection end, so an entry NATed to a removed backend would keep sending there until it
 * times out (30–120 s) — Kubernetes flushes the same two cases.
 */
export function udpFlushes(before: ProxyModel | undefined, after: ProxyModel): UdpFlush {
  const old = new Map((before?.ports ?? []).filter((p) => p.protocol === "udp").map((p) => [portId(p), p]));
  const out: UdpFlush = { removedBackends: [], newlyServed: [] };
  const seen = new Set<string>();
  for (const p of after.ports) {
    if (p.protocol !== "udp") continue;
    const prev = old.get(portId(p));
    seen.add(portId(p));
    const now = new Set(p.backends.map((b) => `${b.ip}:${b.port}`));
    for (const b of prev?.backends ?? []) {
      if (!now.has(`${b.ip}:${b.port}`)) out.removedBackends.push({ clusterIP: prev!.clusterIP, port: prev!.port, nodePort: prev!.nodePort, backend: b });
    }
    if (p.backends.length > 0 && (prev === undefined || prev.backends.length === 0)) {
      out.newlyServed.push({ clusterIP: p.clusterIP, port: p.port, nodePort: p.nodePort });
    }
  }
  for (const [id, prev] of old) {
    if (seen.has(id)) continue;
    for (const b of prev.backends) out.removedBackends.push({ clusterIP: prev.clusterIP, port: prev.port, nodePort: prev.nodePort, backend: b });
  }
  return out;
}
