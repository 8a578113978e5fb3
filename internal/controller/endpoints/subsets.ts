// What a Service's Endpoints should hold, from the Service and its pods: a pure function. Each pod
// contributes one address per service port it can serve; addresses with the same set of ports
// are packed into one subset (Kubernetes' RepackSubsets), sorted so the result is stable.
import { create } from "@bufbuild/protobuf";
import {
  EndpointAddressSchema,
  EndpointPortSchema,
  EndpointSubsetSchema,
  type EndpointAddress,
  type EndpointPort,
  type EndpointSubset,
} from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { Service, ServicePort } from "../../../gen/skiff/v1alpha1/service_pb.js";

/** A Service with a selector selects the pods of its namespace whose labels include it. */
export function selects(svc: Service, pod: Pod): boolean {
  const sel = svc.spec?.selector ?? {};
  const labels = pod.metadata?.labels ?? {};
  const keys = Object.keys(sel);
  return keys.length > 0 && keys.every((k) => Object.hasOwn(labels, k) && labels[k] === sel[k]);
}

export function isPodReady(pod: Pod): boolean {
  return pod.status?.conditions.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Whether the pod may back a Service at all: it has an IP, is not terminating and not finished. */
export function isServable(pod: Pod): boolean {
  const phase = pod.status?.phase ?? "";
  return (pod.status?.podIp ?? "") !== "" && !pod.metadata?.deletionTimestamp && phase !== "Succeeded" && phase !== "Failed";
}

/**
 * The container port a service port reaches on this pod: targetPort as a number, the container
 * port of that name (and protocol), or the service port when targetPort is empty. undefined when
 * the pod has no such named port.
 */
export function resolveTargetPort(sp: ServicePort, pod: Pod): number | undefined {
  const target = sp.targetPort.trim();
  if (target === "") return sp.port;
  if (/^\d+$/.test(target)) {
    const n = Number(target);
    return n >= 1 && n <= 65535 ? n : undefined;
  }
  const protocol = sp.protocol || "TCP";
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports) {
      if (p.name === target && (p.protocol || "TCP") === protocol) return p.containerPort;
    }
  }
  return undefined;
}

function addressFor(pod: Pod, svc: Service): EndpointAddress {
  const m = pod.metadata!;
  const spec = pod.spec;
  return create(EndpointAddressSchema, {
    ip: pod.status!.podIp,
    // A pod with hostname and subdomain = the service's name gets a DNS name under it.
    hostname: spec?.hostname && spec.subdomain === svc.metadata?.name ? spec.hostname : "",
    nodeName: spec?.nodeName ? spec.nodeName : undefined,
    targetRef: { kind: "Pod", namespace: m.namespace, name: m.name, uid: m.uid },
  });
}

const portKey = (p: EndpointPort) => `${p.name}\u0000${p.port}\u0000${p.protocol}\u0000${p.appProtocol}`;
const byPort = (a: EndpointPort, b: EndpointPort) => (portKey(a) < portKey(b) ? -1 : portKey(a) > portKey(b) ? 1 : 0);
const byAddress = (a: EndpointAddress, b: EndpointAddress) =>
  a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : (a.targetRef?.name ?? "") < (b.targetRef?.name ?? "") ? -1 : (a.targetRef?.name ?? "") > (b.targetRef?.name ?? "") ? 1 : 0;

/** The subsets of the Service's Endpoints, given the pods of its namespace (any: it filters). */
export function computeSubsets(svc: Service, pods: readonly Pod[]): EndpointSubset[] {
  const publishNotReady = svc.spec?.publishNotReadyAddresses ?? false;
  const servicePorts = svc.spec?.ports ?? [];
  /** port set -> ports, ready and not-ready addresses */
  const groups = new Map<string, { ports: EndpointPort[]; ready: EndpointAddress[]; notReady: EndpointAddress[] }>();
  for (const pod of pods) {
    if (!selects(svc, pod) || !isServable(pod)) continue;
    const ports: EndpointPort[] = [];
    for (const sp of servicePorts) {
      const port = resolveTargetPort(sp, pod);
      if (port === undefined) continue;
      ports.push(create(EndpointPortSchema, { name: sp.name, port, protocol: sp.protocol || "TCP", appProtocol: sp.appProtocol }));
    }
    // A service with ports needs at least one of them on the pod; a headless one without ports
    // lists the pod's address alone.
    if (servicePorts.length > 0 && ports.length === 0) continue;
    ports.sort(byPort);
    const key = ports.map(portKey).join("\u0001");
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { ports, ready: [], notReady: [] }));
    (publishNotReady || isPodReady(pod) ? g.ready : g.notReady).push(addressFor(pod, svc));
  }
  return [...groups.keys()].sort().map((k) => {
    const g = groups.get(k)!;
    return create(EndpointSubsetSchema, { addresses: g.ready.sort(byAddress), notReadyAddresses: g.notReady.sort(byAddress), ports: g.ports });
  });
}
