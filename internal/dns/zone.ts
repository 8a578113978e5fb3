// The cluster domain's records, computed on each query from the current Services and Endpoints
// (as CoreDNS's kubernetes plugin does). Pure: the caller supplies the lookups.
//
//   <svc>.<ns>.svc.<domain>                 A     ClusterIP; headless: every ready endpoint IP
//   <host>.<svc>.<ns>.svc.<domain>          A     a headless Service's endpoint with a hostname
//   _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV  named ports (targets + their A records)
//   <a-b-c-d>.<ns>.pod.<domain>             A     a.b.c.d (any valid IPv4, like CoreDNS "pods insecure")
//   <svc>.<ns>.svc.<domain>                 CNAME an ExternalName Service's name
// Anything else in the domain: NXDOMAIN; a name that exists without the asked type: NODATA.
// Both carry the zone's SOA, whose minimum is the negative-caching TTL.
import type { Answer, SrvAnswer, StringAnswer } from "dns-packet";
import type { EndpointAddress, Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";

export const DEFAULT_TTL = 5;

export interface ZoneSource {
  service(namespace: string, name: string): Service | undefined;
  endpoints(namespace: string, name: string): Endpoints | undefined;
}

export interface ZoneAnswer {
  rcode: "NOERROR" | "NXDOMAIN";
  answers: Answer[];
  /** The SOA on negative answers. */
  authorities: Answer[];
  additionals: Answer[];
}

export interface Zone {
  domain: string;
  /** True when `name` is the domain or below it. */
  contains(name: string): boolean;
  answer(name: string, type: string): ZoneAnswer;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Normalises a cluster domain: lower case, no dots at either end; rejects what is not a DNS name. */
export function parseClusterDomain(domain: string): string {
  const d = domain.toLowerCase().replace(/^\.+|\.+$/g, "");
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(d) || d.length > 253) {
    throw new Error(`--cluster-domain must be a DNS name like cluster.local, got "${domain}"`);
  }
  return d;
}

export function createZone(domainIn: string, source: ZoneSource, ttl = DEFAULT_TTL): Zone {
  const domain = parseClusterDomain(domainIn);
  const suffix = `.${domain}`;
  const soa: Answer = {
    type: "SOA",
    name: domain,
    ttl,
    class: "IN",
    data: { mname: `ns.dns.${domain}`, rname: `hostmaster.${domain}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: ttl },
  };
  const a = (name: string, ip: string): StringAnswer => ({ type: "A", name, ttl, class: "IN", data: ip });
  const nodata = (): ZoneAnswer => ({ rcode: "NOERROR", answers: [], authorities: [soa], additionals: [] });
  const nxdomain = (): ZoneAnswer => ({ rcode: "NXDOMAIN", answers: [], authorities: [soa], additionals: [] });
  const found = (answers: Answer[], additionals: Answer[] = []): ZoneAnswer => ({ rcode: "NOERROR", answers, authorities: [], additionals });

  /** Endpoint addresses that DNS publishes: ready ones, and not-ready ones when the Service asks. */
  function addresses(svc: Service, ns: string, name: string): EndpointAddress[] {
    const ep = source.endpoints(ns, name);
    const out: EndpointAddress[] = [];
    for (const s of ep?.subsets ?? []) {
      out.push(...s.addresses);
      if (svc.spec?.publishNotReadyAddresses) out.push(...s.notReadyAddresses);
    }
    return out;
  }

  const headless = (svc: Service) => svc.spec?.clusterIp === "None";
  /** The DNS label of a headless endpoint: its hostname, or its IP with dashes. */
  const endpointLabel = (addr: EndpointAddress) => addr.hostname || addr.ip.replaceAll(".", "-");

  function serviceAnswer(qname: string, type: string, svc: Service, ns: string, name: string): ZoneAnswer {
    const spec = svc.spec;
    if (spec?.type === "ExternalName") {
      // A CNAME answers every type; the client's resolver follows it (no upstream here to chase it).
      return found([{ type: "CNAME", name: qname, ttl, class: "IN", data: spec.externalName.replace(/\.$/, "") }]);
    }
    if (type !== "A" && type !== "ANY") return nodata();
    if (headless(svc)) {
      const ips = [...new Set(addresses(svc, ns, name).map((x) => x.ip))];
      return ips.length ? found(ips.map((ip) => a(qname, ip))) : nodata();
    }
    return spec?.clusterIp ? found([a(qname, spec.clusterIp)]) : nodata();
  }

  function srvAnswer(qname: string, type: string, portLabel: string, proto: string, svc: Service, ns: string, name: string): ZoneAnswer {
    const port = svc.spec?.ports.find((p) => p.name !== "" && p.name === portLabel && p.protocol.toLowerCase() === proto);
    if (!port) return nxdomain();
    if (type !== "SRV" && type !== "ANY") return nodata();
    const svcName = `${name}.${ns}.svc.${domain}`;
    if (!headless(svc)) {
      const srv: SrvAnswer = { type: "SRV", name: qname, ttl, class: "IN", data: { priority: 0, weight: 100, port: port.port, target: svcName } };
      return found([srv], svc.spec?.clusterIp ? [a(svcName, svc.spec.clusterIp)] : []);
    }
    // Headless: one target per endpoint, on the endpoint's own port of that name.
    const ep = source.endpoints(ns, name);
    const answers: Answer[] = [];
    const extra: Answer[] = [];
    for (const s of ep?.subsets ?? []) {
      const p = s.ports.find((x) => x.name === portLabel && (x.protocol || "TCP").toLowerCase() === proto);
      if (!p) continue;
      const addrs = svc.spec?.publishNotReadyAddresses ? [...s.addresses, ...s.notReadyAddresses] : s.addresses;
      for (const addr of addrs) {
        const target = `${endpointLabel(addr)}.${svcName}`;
        answers.push({ type: "SRV", name: qname, ttl, class: "IN", data: { priority: 0, weight: 100, port: p.port, target } });
        extra.push(a(target, addr.ip));
      }
    }
    return answers.length ? found(answers, extra) : nodata();
  }

  function svcZone(qname: string, type: string, labels: string[]): ZoneAnswer {
    // labels: the part before "<ns>.svc", outermost last; ns is the last one.
    const ns = labels[labels.length - 1];
    const rest = labels.slice(0, -1);
    if (rest.length === 0) return nodata(); // <ns>.svc.<domain>: exists as a parent of names
    const name = rest[rest.length - 1];
    const svc = source.service(ns, name);
    if (!svc) return nxdomain();
    if (rest.length === 1) return serviceAnswer(qname, type, svc, ns, name);
    if (rest.length === 2) {
      const label = rest[0];
      if (headless(svc)) {
        const addr = addresses(svc, ns, name).find((x) => endpointLabel(x) === label);
        if (addr) return type === "A" || type === "ANY" ? found([a(qname, addr.ip)]) : nodata();
      }
      // _<proto>.<svc>: a parent of SRV names.
      if ((label === "_tcp" || label === "_udp") && svc.spec?.ports.some((p) => p.name !== "" && `_${p.protocol.toLowerCase()}` === label)) return nodata();
      return nxdomain();
    }
    if (rest.length === 3 && rest[0].startsWith("_") && rest[1].startsWith("_")) {
      return srvAnswer(qname, type, rest[0].slice(1), rest[1].slice(1), svc, ns, name);
    }
    return nxdomain();
  }

  function podZone(qname: string, type: string, labels: string[]): ZoneAnswer {
    if (labels.length === 1) return nodata(); // <ns>.pod.<domain>
    if (labels.length !== 2) return nxdomain();
    const ip = labels[0].replaceAll("-", ".");
    if (!IPV4.test(ip) || labels[0].split("-").length !== 4) return nxdomain();
    return type === "A" || type === "ANY" ? found([a(qname, ip)]) : nodata();
  }

  return {
    domain,
    contains(name) {
      const n = name.toLowerCase().replace(/\.$/, "");
      return n === domain || n.endsWith(suffix);
    },
    answer(qname, type) {
      const n = qname.toLowerCase().replace(/\.$/, "");
      if (n === domain) {
        if (type === "SOA" || type === "ANY") return found([{ ...soa, name: qname }]);
        return nodata();
      }
      const labels = n.slice(0, -suffix.length).split(".");
      const top = labels.pop()!;
      if (labels.length === 0) return top === "svc" || top === "pod" ? nodata() : nxdomain();
      if (top === "svc") return svcZone(qname, type, labels);
      if (top === "pod") return podZone(qname, type, labels);
      return nxdomain();
    },
  };
}
