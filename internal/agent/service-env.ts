// Kubernetes' service environment variables: for each Service with a ClusterIP in the pod's
// namespace, <SVC>_SERVICE_HOST/_PORT/_PORT_<NAME> and the docker-link style <SVC>_PORT… set.
// Taken from the Services that exist when the container starts; the container's own env wins.
// Every pod also gets those of the `kubernetes` Service in `default` (KUBERNETES_SERVICE_HOST…),
// whatever its namespace and enableServiceLinks say: how in-cluster clients find the apiserver.
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";

/** The Services whose variables a pod gets (serviceLinks: its spec.enableServiceLinks, default true). */
export function servicesForPod(namespace: string, inNamespace: Service[], kubernetes: Service | undefined, serviceLinks: boolean): Service[] {
  const out = serviceLinks ? [...inNamespace] : [];
  if (kubernetes && !(serviceLinks && namespace === kubernetes.metadata?.namespace)) out.push(kubernetes);
  return out;
}

export interface EnvPair {
  name: string;
  value: string;
}

const envName = (s: string) => s.toUpperCase().replaceAll("-", "_");

export function serviceEnvVars(services: Service[]): EnvPair[] {
  const out: EnvPair[] = [];
  const sorted = [...services].sort((a, b) => a.metadata!.name.localeCompare(b.metadata!.name));
  for (const svc of sorted) {
    const spec = svc.spec;
    const ip = spec?.clusterIp ?? "";
    // Headless and ExternalName Services have no address to give.
    if (!spec || ip === "" || ip === "None" || spec.ports.length === 0) continue;
    const prefix = envName(svc.metadata!.name);
    const first = spec.ports[0];
    out.push({ name: `${prefix}_SERVICE_HOST`, value: ip });
    out.push({ name: `${prefix}_SERVICE_PORT`, value: String(first.port) });
    for (const p of spec.ports) {
      if (p.name) out.push({ name: `${prefix}_SERVICE_PORT_${envName(p.name)}`, value: String(p.port) });
    }
    const url = (p: typeof first) => `${(p.protocol || "TCP").toLowerCase()}://${ip}:${p.port}`;
    out.push({ name: `${prefix}_PORT`, value: url(first) });
    for (const p of spec.ports) {
      const proto = (p.protocol || "TCP").toUpperCase();
      const base = `${prefix}_PORT_${p.port}_${proto}`;
      out.push({ name: base, value: url(p) });
      out.push({ name: `${base}_PROTO`, value: proto.toLowerCase() });
      out.push({ name: `${base}_PORT`, value: String(p.port) });
      out.push({ name: `${base}_ADDR`, value: ip });
    }
  }
  return out;
}
