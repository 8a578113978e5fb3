// What a container sees of cluster DNS and Services: its resolv.conf per dnsPolicy, and the
// Kubernetes service environment variables.
import { create } from "@bufbuild/protobuf";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodSchema, type Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { kindValidators } from "../api/validation.ts";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { containerEnv, type ConfigContext } from "./container-config.ts";
import { resolvConf } from "./pod-files.ts";
import { serviceEnvVars } from "./service-env.ts";

let dir: string;
let hostConf: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-pod-dns-"));
  hostConf = join(dir, "resolv.conf");
  await writeFile(hostConf, "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const dns = { nameserver: "10.88.0.1", domain: "cluster.local" };
function pod(spec: object = {}): Pod {
  return create(PodSchema, { metadata: { name: "p", namespace: "shop", uid: "u" }, spec: { containers: [{ name: "app", image: "x" }], ...spec } as any });
}

describe("resolv.conf", () => {
  it("ClusterFirst: the node's DNS, the namespace's search path and ndots:5", async () => {
    expect(await resolvConf(pod(), hostConf, dns)).toBe(
      "nameserver 10.88.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
    );
  });

  it("Default, and ClusterFirst on the host network, copy the node's file; ClusterFirstWithHostNet does not", async () => {
    const host = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";
    expect(await resolvConf(pod({ dnsPolicy: "Default" }), hostConf, dns)).toBe(host);
    expect(await resolvConf(pod({ hostNetwork: true }), hostConf, dns)).toBe(host);
    expect(await resolvConf(pod({ hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" }), hostConf, dns)).toContain("nameserver 10.88.0.1\n");
  });

  it("without cluster DNS on the node, ClusterFirst copies the node's file", async () => {
    expect(await resolvConf(pod(), hostConf, undefined)).toContain("nameserver 192.0.2.53");
  });

  it("None takes only dnsConfig; dnsConfig adds to the others, its options overriding", async () => {
    const dnsConfig = { nameservers: ["192.0.2.9"], searches: ["extra.example"], options: [{ name: "ndots", value: "2" }, { name: "single-request" }] };
    expect(await resolvConf(pod({ dnsPolicy: "None", dnsConfig }), hostConf, dns)).toBe(
      "nameserver 192.0.2.9\nsearch extra.example\noptions ndots:2 single-request\n",
    );
    expect(await resolvConf(pod({ dnsConfig }), hostConf, dns)).toBe(
      "nameserver 10.88.0.1\nnameserver 192.0.2.9\nsearch shop.svc.cluster.local svc.cluster.local cluster.local extra.example\noptions ndots:2 single-request\n",
    );
    expect(await resolvConf(pod({ dnsPolicy: "Default", dnsConfig }), hostConf, dns)).toBe(
      "nameserver 192.0.2.53\nnameserver 192.0.2.9\nsearch corp.example extra.example\noptions edns0 ndots:2 single-request\n",
    );
  });
});

describe("dnsConfig validation", () => {
  it("wants a nameserver with dnsPolicy None, IP nameservers and DNS-name search domains, naming each field", () => {
    const v = kindValidators.Pod(pod({ dnsPolicy: "None", dnsConfig: { searches: ["bad_domain"] } }), undefined);
    expect(v).toContainEqual({ field: "spec.dnsConfig.nameservers", message: 'required: at least one nameserver when dnsPolicy is "None"' });
    expect(v.some((x) => x.field === "spec.dnsConfig.searches[0]")).toBe(true);
    const bad = kindValidators.Pod(pod({ dnsConfig: { nameservers: ["dns.example", "1.1.1.1", "8.8.8.8", "9.9.9.9"] } }), undefined);
    expect(bad.map((x) => x.field)).toEqual(["spec.dnsConfig.nameservers", "spec.dnsConfig.nameservers[0]"]);
    expect(kindValidators.Pod(pod({ dnsPolicy: "None", dnsConfig: { nameservers: ["192.0.2.9"] } }), undefined)).toEqual([]);
  });
});

function svc(name: string, spec: object): Service {
  return create(ServiceSchema, { metadata: { name, namespace: "shop" }, spec: spec as any });
}

describe("service environment variables", () => {
  const services = [
    svc("redis-primary", { clusterIp: "10.96.0.11", ports: [{ name: "redis", port: 6379, protocol: "TCP" }, { name: "metrics", port: 9121, protocol: "TCP" }] }),
    svc("dns", { clusterIp: "10.96.0.10", ports: [{ port: 53, protocol: "UDP" }] }),
    svc("headless", { clusterIp: "None", ports: [{ port: 80, protocol: "TCP" }] }),
    svc("ext", { type: "ExternalName", externalName: "example.org" }),
  ];

  it("gives each Service with a ClusterIP Kubernetes' variables, and none to headless or ExternalName ones", () => {
    const env = Object.fromEntries(serviceEnvVars(services).map((e) => [e.name, e.value]));
    expect(env).toEqual({
      DNS_SERVICE_HOST: "10.96.0.10",
      DNS_SERVICE_PORT: "53",
      DNS_PORT: "udp://10.96.0.10:53",
      DNS_PORT_53_UDP: "udp://10.96.0.10:53",
      DNS_PORT_53_UDP_PROTO: "udp",
      DNS_PORT_53_UDP_PORT: "53",
      DNS_PORT_53_UDP_ADDR: "10.96.0.10",
      REDIS_PRIMARY_SERVICE_HOST: "10.96.0.11",
      REDIS_PRIMARY_SERVICE_PORT: "6379",
      REDIS_PRIMARY_SERVICE_PORT_REDIS: "6379",
      REDIS_PRIMARY_SERVICE_PORT_METRICS: "9121",
      REDIS_PRIMARY_PORT: "tcp://10.96.0.11:6379",
      REDIS_PRIMARY_PORT_6379_TCP: "tcp://10.96.0.11:6379",
      REDIS_PRIMARY_PORT_6379_TCP_PROTO: "tcp",
      REDIS_PRIMARY_PORT_6379_TCP_PORT: "6379",
      REDIS_PRIMARY_PORT_6379_TCP_ADDR: "10.96.0.11",
      REDIS_PRIMARY_PORT_9121_TCP: "tcp://10.96.0.11:9121",
      REDIS_PRIMARY_PORT_9121_TCP_PROTO: "tcp",
      REDIS_PRIMARY_PORT_9121_TCP_PORT: "9121",
      REDIS_PRIMARY_PORT_9121_TCP_ADDR: "10.96.0.11",
    });
  });

  it("lets the container's own env win and use them in $(VAR)", () => {
    const p = pod({
      containers: [{ name: "app", image: "x", env: [{ name: "DNS_SERVICE_PORT", value: "5353" }, { name: "URL", value: "redis://$(REDIS_PRIMARY_SERVICE_HOST):6379" }] }],
    });
    const ctx = { serviceEnv: serviceEnvVars(services), configMaps: new Map(), secrets: new Map() } as unknown as ConfigContext;
    const env = Object.fromEntries(containerEnv(p, p.spec!.containers[0], ctx).map((e) => [e.name, e.value]));
    expect(env.DNS_SERVICE_PORT).toBe("5353");
    expect(env.DNS_SERVICE_HOST).toBe("10.96.0.10");
    expect(env.URL).toBe("redis://10.96.0.11:6379");
  });
});
