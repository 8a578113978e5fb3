// Node-local cluster DNS (like Kubernetes' NodeLocal DNSCache, but answering itself): every agent
// serves the cluster domain on its pod bridge's gateway address, port 53, UDP and TCP, from
// Service and Endpoints informers. Pods get that address as their nameserver, so names resolve on
// every node without a service proxy. With --cluster-dns the agent serves nothing and pods get
// that address instead.
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import type { Informer } from "../client/informer.ts";
import { startDnsServer, type DnsServer } from "../dns/server.ts";
import { createZone, parseClusterDomain } from "../dns/zone.ts";
import type { Logger } from "../log/log.ts";
import type { PodNetwork } from "./network.ts";
import type { PodDnsSettings } from "./pod-files.ts";

export interface NodeDnsOptions {
  /** Default cluster.local. */
  domain?: string;
  /** A DNS server's address to give pods instead of serving one here. */
  clusterDns?: string;
  /** Resolver for names outside the cluster domain ("IP" or "IP:PORT"); none: REFUSED. */
  upstream?: string;
  /** Port to serve on (tests); default 53. */
  port?: number;
}

export interface NodeDns {
  /** What pods put in resolv.conf; undefined when this node has no cluster DNS (pods get the node's). */
  settings(): PodDnsSettings | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createNodeDns(
  opts: NodeDnsOptions & {
    network: PodNetwork;
    services: Informer<Service>;
    endpoints?: Informer<Endpoints>;
    log: Logger;
  },
): NodeDns {
  const domain = parseClusterDomain(opts.domain ?? "cluster.local");
  let nameserver = opts.clusterDns;
  let server: DnsServer | undefined;
  return {
    settings: () => (nameserver ? { nameserver, domain } : undefined),
    async start() {
      if (opts.clusterDns || !opts.network.hostGateway || !opts.endpoints) return;
      const host = await opts.network.hostGateway();
      nameserver = host;
      const { services, endpoints } = opts;
      const zone = createZone(domain, {
        service: (ns, name) => services.get(`${ns}/${name}`),
        endpoints: (ns, name) => endpoints.get(`${ns}/${name}`),
      });
      server = await startDnsServer({ zone, host, port: opts.port ?? 53, upstream: opts.upstream, log: opts.log });
      opts.log.info({ address: `${host}:${server.port}`, domain, upstream: opts.upstream }, "serving cluster DNS");
    },
    async stop() {
      await server?.close();
      server = undefined;
    },
  };
}
