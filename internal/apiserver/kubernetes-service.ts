// The `kubernetes` Service in `default`: how pods find the apiserver (Kubernetes' master endpoints
// reconciler). ClusterIP = the first address of the Service range, port 443 → the apiserver's
// port; its Endpoints (no selector: the endpoints controller leaves them alone) list the address
// the apiserver advertises. Written at every apiserver start, and only when they differ.
import { create, equals } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { EndpointsSchema, type Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, ServiceSpecSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { formatIPv4 } from "../util/ipv4.ts";
import type { ResourceOps } from "./resources.ts";
import { DEFAULT_SERVICE_CIDR, parseServiceCidr } from "./service-alloc.ts";

export const KUBERNETES_SERVICE = "kubernetes";
const NAMESPACE = "default";
const LABELS = { component: "apiserver", provider: "kubernetes" };

export interface KubernetesServiceOptions {
  ops: Map<string, ResourceOps>;
  serviceCidr?: string;
  /** Where pods reach the apiserver: an address of this machine that is not loopback. */
  advertiseAddress: string;
  port: number;
  log?: Logger;
}

/** The Service's ClusterIP: the first usable address of the range (10.96.0.1 for 10.96.0.0/12). */
export function kubernetesServiceIP(serviceCidr = DEFAULT_SERVICE_CIDR): string {
  return formatIPv4(parseServiceCidr(serviceCidr).first);
}

async function getOrUndefined<T>(ops: ResourceOps, name: string): Promise<T | undefined> {
  try {
    return (await ops.get(NAMESPACE, name)) as unknown as T;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
    throw err;
  }
}

export async function reconcileKubernetesService(opts: KubernetesServiceOptions): Promise<void> {
  const services = opts.ops.get("Service")!;
  const endpoints = opts.ops.get("Endpoints")!;
  const clusterIp = kubernetesServiceIP(opts.serviceCidr);
  const spec = create(ServiceSpecSchema, {
    type: "ClusterIP",
    clusterIp,
    clusterIps: [clusterIp],
    sessionAffinity: "None",
    ports: [{ name: "https", protocol: "TCP", port: 443, targetPort: String(opts.port) }],
  });
  const fresh = () => create(ServiceSchema, { metadata: { name: KUBERNETES_SERVICE, namespace: NAMESPACE, labels: LABELS }, spec });
  const svc = await getOrUndefined<Service>(services, KUBERNETES_SERVICE);
  if (!svc) {
    await services.create(fresh());
    opts.log?.info({ clusterIp, port: opts.port }, "created the kubernetes service");
  } else if (svc.spec?.ports.length !== 1 || svc.spec.ports[0].port !== 443 || svc.spec.ports[0].targetPort !== String(opts.port) || svc.spec.clusterIp !== clusterIp) {
    if (svc.spec?.clusterIp !== clusterIp) {
      // A ClusterIP cannot change in place: the Service is made again with the range's first address.
      await services.delete(NAMESPACE, KUBERNETES_SERVICE);
      await services.create(fresh());
    } else {
      svc.spec.ports = spec.ports;
      await services.update(svc);
    }
    opts.log?.info({ clusterIp, port: opts.port }, "updated the kubernetes service");
  }

  const want = create(EndpointsSchema, {
    metadata: { name: KUBERNETES_SERVICE, namespace: NAMESPACE, labels: LABELS },
    subsets: [{ addresses: [{ ip: opts.advertiseAddress }], ports: [{ name: "https", port: opts.port, protocol: "TCP" }] }],
  });
  const ep = await getOrUndefined<Endpoints>(endpoints, KUBERNETES_SERVICE);
  if (!ep) await endpoints.create(want);
  else if (!equals(EndpointsSchema, create(EndpointsSchema, { subsets: ep.subsets }), create(EndpointsSchema, { subsets: want.subsets }))) {
    ep.subsets = want.subsets;
    await endpoints.update(ep);
  }
}
