// Semantic validation per kind: what the .proto rules (protovalidate) cannot say — name formats,
// quantities, references between fields, what may change on update. Every check reports a
// Kubernetes-style field path, and all violations are reported at once.
import type { ObjectMeta } from "../../gen/skiff/v1alpha1/meta_pb.js";
import type { Container, PodSpec, PodTemplateSpec } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ServiceSpec } from "../../gen/skiff/v1alpha1/service_pb.js";
import {
  validateAnnotations,
  validateDNS1035Label,
  validateDNS1123Label,
  validateDNS1123Subdomain,
  validateEnvVarName,
  validateLabels,
  validatePortName,
  validateQualifiedName,
  type FieldViolation,
} from "./names.ts";
import { compareQuantity, validateResourceList } from "./quantity.ts";
import { podUpdateViolations } from "./pod-update.ts";
import { validatePodSecurity } from "./security-context.ts";
import { validateSubPath, validateVolume } from "./volume-validation.ts";
import { validatePersistentVolume, validatePersistentVolumeClaim, validateStorageClass } from "./storage-validation.ts";
import { labelSelectorFromObject, matchesLabels } from "./selector.ts";
import { tokenSecretViolations } from "../join/token.ts";

export type Violation = FieldViolation;

type NameCheck = (v: string) => string[];

function at(field: string, msgs: string[]): Violation[] {
  return msgs.map((message) => ({ field, message }));
}

/** Checks metadata common to every kind. `nameCheck` differs per kind (labels vs subdomains). */
export function validateMeta(m: ObjectMeta | undefined, namespaced: boolean, nameCheck: NameCheck = validateDNS1123Subdomain): Violation[] {
  if (!m) return [{ field: "metadata", message: "required" }];
  const out: Violation[] = [];
  if (m.name === "") out.push({ field: "metadata.name", message: "required (or set metadata.generateName)" });
  else out.push(...at("metadata.name", nameCheck(m.name)));
  if (namespaced) out.push(...at("metadata.namespace", validateDNS1123Label(m.namespace)));
  else if (m.namespace !== "") out.push({ field: "metadata.namespace", message: "must be empty: this kind is not namespaced" });
  out.push(...at("metadata.labels", validateLabels(m.labels)));
  out.push(...at("metadata.annotations", validateAnnotations(m.annotations)));
  m.ownerReferences.forEach((r, i) => {
    for (const f of ["apiVersion", "kind", "name", "uid"] as const) {
      if (r[f] === "") out.push({ field: `metadata.ownerReferences[${i}].${f}`, message: "required" });
    }
  });
  if (m.ownerReferences.filter((r) => r.controller).length > 1) {
    out.push({ field: "metadata.ownerReferences", message: "only one reference can have controller set to true" });
  }
  m.finalizers.forEach((f, i) => out.push(...at(`metadata.finalizers[${i}]`, validateQualifiedName(f))));
  return out;
}

/** Each lifecycle hook has exactly one action; init containers run to completion and have none. */
function validateLifecycle(c: Container, path: string, isInit: boolean): Violation[] {
  if (!c.lifecycle) return [];
  if (isInit && c.restartPolicy !== "Always") return [{ field: `${path}.lifecycle`, message: "may not be set for init containers (except sidecars, restartPolicy: Always)" }];
  const out: Violation[] = [];
  for (const hook of ["postStart", "preStop"] as const) {
    const h = c.lifecycle[hook];
    if (!h) continue;
    const actions = [h.exec, h.httpGet, h.sleep].filter((a) => a !== undefined).length;
    if (actions !== 1) out.push({ field: `${path}.lifecycle.${hook}`, message: "must specify exactly one of exec, httpGet or sleep" });
  }
  return out;
}

function validateContainer(c: Container, path: string, volumes: Set<string>, isInit = false): Violation[] {
  const out: Violation[] = validateLifecycle(c, path, isInit);
  if (!isInit && c.restartPolicy !== "") {
    out.push({ field: `${path}.restartPolicy`, message: "may only be set on init containers (restartPolicy: Always makes a sidecar)" });
  }
  if (c.terminationMessagePath !== "" && !c.terminationMessagePath.startsWith("/")) {
    out.push({ field: `${path}.terminationMessagePath`, message: "must be an absolute path" });
  }
  // Empty names and images are reported by the .proto rules; formats are checked here.
  if (c.name !== "") out.push(...at(`${path}.name`, validateDNS1123Label(c.name)));
  if (c.image.trim() !== c.image) out.push({ field: `${path}.image`, message: "must not have leading or trailing whitespace" });
  const ports = new Set<string>();
  c.ports.forEach((p, i) => {
    if (p.name !== "") {
      out.push(...at(`${path}.ports[${i}].name`, validatePortName(p.name)));
      if (ports.has(p.name)) out.push({ field: `${path}.ports[${i}].name`, message: `duplicate port name "${p.name}"` });
      ports.add(p.name);
    }
  });
  c.env.forEach((e, i) => e.name !== "" && out.push(...at(`${path}.env[${i}].name`, validateEnvVarName(e.name))));
  const req = c.resources?.requests ?? {};
  const lim = c.resources?.limits ?? {};
  out.push(...validateResourceList(req, `${path}.resources.requests`));
  out.push(...validateResourceList(lim, `${path}.resources.limits`));
  for (const [name, value] of Object.entries(req)) {
    const limit = lim[name];
    try {
      if (limit !== undefined && compareQuantity(value, limit) > 0) {
        out.push({ field: `${path}.resources.requests[${name}]`, message: `must be less than or equal to the ${name} limit (${limit})` });
      }
    } catch {
      // unparseable quantities are reported by validateResourceList
    }
  }
  c.volumeMounts.forEach((m, i) => {
    if (!volumes.has(m.name)) out.push({ field: `${path}.volumeMounts[${i}].name`, message: `volume "${m.name}" is not in spec.volumes` });
    if (m.mountPath === "") out.push({ field: `${path}.volumeMounts[${i}].mountPath`, message: "required" });
    out.push(...validateSubPath(m, `${path}.volumeMounts[${i}]`));
  });
  return out;
}

export function validatePodSpec(spec: PodSpec | undefined, path: string): Violation[] {
  if (!spec) return [{ field: path, message: "required" }];
  const out: Violation[] = [];
  const volumes = new Set<string>();
  const containerNames = new Set([...spec.initContainers, ...spec.containers].map((c) => c.name));
  spec.volumes.forEach((v, i) => {
    if (v.name !== "") out.push(...at(`${path}.volumes[${i}].name`, validateDNS1123Label(v.name)));
    if (volumes.has(v.name)) out.push({ field: `${path}.volumes[${i}].name`, message: `duplicate volume "${v.name}"` });
    volumes.add(v.name);
    out.push(...validateVolume(v, `${path}.volumes[${i}]`, containerNames));
  });
  const names = new Set<string>();
  const check = (list: Container[], field: string) =>
    list.forEach((c, i) => {
      if (names.has(c.name)) out.push({ field: `${path}.${field}[${i}].name`, message: `duplicate container name "${c.name}"` });
      names.add(c.name);
      out.push(...validateContainer(c, `${path}.${field}[${i}]`, volumes, field === "initContainers"));
    });
  check(spec.initContainers, "initContainers");
  check(spec.containers, "containers");
  if (spec.nodeName !== "") out.push(...at(`${path}.nodeName`, validateDNS1123Subdomain(spec.nodeName)));
  out.push(...validateDnsConfig(spec, path));
  out.push(...validatePodSecurity(spec, path));
  out.push(...at(`${path}.nodeSelector`, validateLabels(spec.nodeSelector)));
  return out;
}

function validateTemplate(
  sel: { matchLabels: Record<string, string>; matchExpressions: { key: string; operator: string; values: string[] }[] } | undefined,
  tpl: PodTemplateSpec | undefined,
  path: string,
): Violation[] {
  const out: Violation[] = [];
  if (!sel || (Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0)) {
    out.push({ field: `${path}.selector`, message: "required: a non-empty selector" });
  }
  if (!tpl) return [...out, { field: `${path}.template`, message: "required" }];
  const labels = tpl.metadata?.labels ?? {};
  out.push(...at(`${path}.template.metadata.labels`, validateLabels(labels)));
  if (sel) {
    try {
      if (!matchesLabels(labelSelectorFromObject(sel), labels)) {
        out.push({ field: `${path}.template.metadata.labels`, message: "must match spec.selector" });
      }
    } catch (e) {
      out.push({ field: `${path}.selector`, message: (e as Error).message });
    }
  }
  out.push(...validatePodSpec(tpl.spec, `${path}.template.spec`));
  return out;
}

const intOrPercent = /^(\d+|\d+%)$/;

/** The semantic rules about a kind's status alone: all an UpdateStatus can change. */
export const statusValidators: Record<string, (obj: any) => Violation[]> = {
  Node: (n) => [
    ...validateResourceList(n.status?.capacity ?? {}, "status.capacity"),
    ...validateResourceList(n.status?.allocatable ?? {}, "status.allocatable"),
  ],
};

/** Why each kind's fields may or may not change on update is Kubernetes' own rule set. */
export const kindValidators: Record<string, (obj: any, old: any | undefined) => Violation[]> = {
  Namespace: (ns) => validateMeta(ns.metadata, false, validateDNS1123Label),
  Node: (n) => {
    const out = validateMeta(n.metadata, false);
    (n.spec?.taints ?? []).forEach((t: { key: string }, i: number) =>
      out.push(...at(`spec.taints[${i}].key`, validateQualifiedName(t.key))),
    );
    out.push(...statusValidators.Node(n));
    return out;
  },
  Pod: (pod, old) => {
    const out = [...validateMeta(pod.metadata, true), ...validatePodSpec(pod.spec, "spec")];
    if (old && pod.spec && old.spec) out.push(...podUpdateViolations(pod.spec, old.spec));
    return out;
  },
  ReplicaSet: (rs, old) => {
    const out = [...validateMeta(rs.metadata, true), ...validateTemplate(rs.spec?.selector, rs.spec?.template, "spec")];
    if (old && JSON.stringify(old.spec?.selector) !== JSON.stringify(rs.spec?.selector)) {
      out.push({ field: "spec.selector", message: "field is immutable" });
    }
    return out;
  },
  Deployment: (d, old) => {
    const out = [...validateMeta(d.metadata, true), ...validateTemplate(d.spec?.selector, d.spec?.template, "spec")];
    const ru = d.spec?.strategy?.rollingUpdate;
    if (ru) {
      for (const f of ["maxSurge", "maxUnavailable"] as const) {
        if (!intOrPercent.test(ru[f])) out.push({ field: `spec.strategy.rollingUpdate.${f}`, message: `must be a number or a percentage like "25%", got "${ru[f]}"` });
      }
      if (/^0%?$/.test(ru.maxSurge) && /^0%?$/.test(ru.maxUnavailable)) {
        out.push({ field: "spec.strategy.rollingUpdate.maxUnavailable", message: "may not be 0 when maxSurge is 0" });
      }
    }
    if (d.spec?.strategy?.type === "Recreate" && ru) {
      out.push({ field: "spec.strategy.rollingUpdate", message: 'may not be set when strategy type is "Recreate"' });
    }
    if (old && JSON.stringify(old.spec?.selector) !== JSON.stringify(d.spec?.selector)) {
      out.push({ field: "spec.selector", message: "field is immutable" });
    }
    return out;
  },
  Service: (svc, old) => [...validateMeta(svc.metadata, true, validateDNS1035Label), ...validateServiceSpec(svc.spec, old?.spec)],
  Endpoints: (ep) => validateMeta(ep.metadata, true),
  ConfigMap: (cm, old) => [
    ...validateMeta(cm.metadata, true),
    ...validateDataKeys([...Object.keys(cm.data), ...Object.keys(cm.binaryData)], "data"),
    ...validateDataSize([cm.data, cm.binaryData], "data"),
    ...immutableDataViolations(cm, old, ["data", "binaryData"]),
  ],
  Secret: (s, old) => [
    ...validateMeta(s.metadata, true),
    ...validateDataKeys(Object.keys(s.data), "data"),
    ...validateDataSize([s.data], "data"),
    ...immutableDataViolations(s, old, ["data"]),
    ...tokenSecretViolations(s),
  ],
  PersistentVolume: validatePersistentVolume,
  PersistentVolumeClaim: validatePersistentVolumeClaim,
  StorageClass: validateStorageClass,
  Lease: (l) => validateMeta(l.metadata, true),
  Event: (e) => validateMeta(e.metadata, true),
};

const dataKey = /^[-._a-zA-Z0-9]+$/;

/** Kubernetes' limit on a ConfigMap's or Secret's data: keys and values together. */
export const MAX_CONFIG_DATA_BYTES = 1024 * 1024;

function validateDataSize(maps: Record<string, string | Uint8Array>[], path: string): Violation[] {
  let total = 0;
  for (const m of maps) {
    for (const [k, v] of Object.entries(m)) total += Buffer.byteLength(k) + (typeof v === "string" ? Buffer.byteLength(v) : v.length);
  }
  return total > MAX_CONFIG_DATA_BYTES ? [{ field: path, message: `too long: ${total} bytes, at most ${MAX_CONFIG_DATA_BYTES} (1 MiB)` }] : [];
}

/** `immutable: true` freezes the data and itself, as in Kubernetes. */
function immutableDataViolations(obj: any, old: any | undefined, fields: string[]): Violation[] {
  if (!old?.immutable) return [];
  const out: Violation[] = [];
  if (!obj.immutable) out.push({ field: "immutable", message: "field is immutable when `immutable` is set" });
  for (const f of fields) {
    if (!sameData(obj[f] ?? {}, old[f] ?? {})) out.push({ field: f, message: "field is immutable when `immutable` is set" });
  }
  return out;
}

function sameData(a: Record<string, string | Uint8Array>, b: Record<string, string | Uint8Array>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => k in b && Buffer.from(a[k] as any).equals(Buffer.from(b[k] as any)));
}

function validateDataKeys(keys: string[], path: string): Violation[] {
  return keys
    .filter((k) => !dataKey.test(k) || k.length > 253)
    .map((k) => ({ field: `${path}[${k}]`, message: "a key must consist of alphanumeric characters, '-', '_' or '.' (at most 253)" }));
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * What a Service may say, as Kubernetes checks it. Ranges and whether a value is free depend on
 * the apiserver's configuration and state: the allocator (internal/apiserver) checks those.
 */
export function validateServiceSpec(spec: ServiceSpec | undefined, old: ServiceSpec | undefined): Violation[] {
  if (!spec) return [{ field: "spec", message: "required" }];
  const out: Violation[] = [];
  const type = spec.type;
  const headless = spec.clusterIp === "None";
  if (type === "ExternalName") {
    if (spec.externalName === "") out.push({ field: "spec.externalName", message: "required for type ExternalName" });
    else out.push(...at("spec.externalName", validateDNS1123Subdomain(spec.externalName.replace(/\.$/, ""))));
    // A clusterIP left over from the type before is dropped (by the allocator), as in Kubernetes.
    if (spec.clusterIp !== "" && spec.clusterIp !== old?.clusterIp) out.push({ field: "spec.clusterIP", message: "must be empty for type ExternalName" });
  } else {
    if (spec.externalName !== "") out.push({ field: "spec.externalName", message: `may only be set for type ExternalName, not ${type}` });
    if (spec.clusterIp !== "" && !headless && !IPV4.test(spec.clusterIp)) {
      out.push({ field: "spec.clusterIP", message: `"${spec.clusterIp}" must be a valid IPv4 address, "None" (headless) or empty (allocated)` });
    }
    if (headless && type !== "ClusterIP") out.push({ field: "spec.clusterIP", message: `may not be "None" for type ${type}` });
    if (spec.ports.length === 0 && !headless) out.push({ field: "spec.ports", message: "required: at least one port (or clusterIP: None)" });
  }
  if (spec.clusterIps.length > 1) out.push({ field: "spec.clusterIPs", message: "at most one address: this cluster is IPv4 only" });
  else if (spec.clusterIps.length === 1 && spec.clusterIp !== "" && spec.clusterIps[0] !== spec.clusterIp) {
    out.push({ field: "spec.clusterIPs[0]", message: `must match spec.clusterIP ("${spec.clusterIp}")` });
  }
  // An empty clusterIP on update keeps the stored one; ExternalName has none to keep.
  if (old && old.clusterIp !== "" && spec.clusterIp !== "" && spec.clusterIp !== old.clusterIp && old.type !== "ExternalName") {
    out.push({ field: "spec.clusterIP", message: `field is immutable (is "${old.clusterIp}")` });
  }
  const nodePorts = type === "NodePort" || type === "LoadBalancer";
  const names = new Set<string>();
  const seen = new Set<string>();
  spec.ports.forEach((p, i) => {
    const path = `spec.ports[${i}]`;
    if (spec.ports.length > 1 && p.name === "") out.push({ field: `${path}.name`, message: "required when there is more than one port" });
    if (p.name !== "") {
      out.push(...at(`${path}.name`, validateDNS1123Label(p.name)));
      if (names.has(p.name)) out.push({ field: `${path}.name`, message: `duplicate port name "${p.name}"` });
      names.add(p.name);
    }
    if (p.protocol === "SCTP") out.push({ field: `${path}.protocol`, message: "SCTP is not supported: use TCP or UDP" });
    const key = `${p.port}/${p.protocol}`;
    if (seen.has(key)) out.push({ field: path, message: `duplicate port ${key}` });
    seen.add(key);
    if (/^\d+$/.test(p.targetPort)) {
      const n = Number(p.targetPort);
      if (n < 1 || n > 65535) out.push({ field: `${path}.targetPort`, message: `must be a port number from 1 to 65535 or a port name, got ${p.targetPort}` });
    } else {
      out.push(...at(`${path}.targetPort`, validatePortName(p.targetPort)));
    }
    // NodePorts left over from a NodePort type before are dropped (by the allocator).
    const leftOver = old?.ports.some((q) => q.nodePort === p.nodePort);
    if (p.nodePort !== 0 && !nodePorts && !leftOver) out.push({ field: `${path}.nodePort`, message: `may not be set for type ${type}` });
  });
  out.push(...at("spec.selector", validateLabels(spec.selector)));
  out.push(...serviceProxyViolations(spec));
  return out;
}

/**
 * What the service proxy does not do is refused, never stored and ignored; what Skiff does (one
 * IPv4 cluster IP) may be said the way Kubernetes says it.
 */
function serviceProxyViolations(spec: ServiceSpec): Violation[] {
  const out: Violation[] = [];
  if (spec.sessionAffinityConfig && spec.sessionAffinity !== "ClientIP") {
    out.push({ field: "spec.sessionAffinityConfig", message: 'may only be set with sessionAffinity "ClientIP"' });
  }
  const timeout = spec.sessionAffinityConfig?.clientIp?.timeoutSeconds;
  if (spec.sessionAffinity === "ClientIP" && timeout !== undefined && (timeout < 1 || timeout > 86_400)) {
    out.push({ field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", message: `must be from 1 to 86400 seconds, got ${timeout}` });
  }
  spec.ipFamilies.forEach((f, i) => {
    if (f !== "IPv4") out.push({ field: `spec.ipFamilies[${i}]`, message: `"${f}" is not supported: this cluster is IPv4 single-stack (use IPv4)` });
  });
  if (spec.ipFamilies.length > 1) out.push({ field: "spec.ipFamilies", message: "at most one family: this cluster is IPv4 single-stack" });
  if (spec.ipFamilyPolicy !== "" && spec.ipFamilyPolicy !== "SingleStack") {
    out.push({ field: "spec.ipFamilyPolicy", message: `"${spec.ipFamilyPolicy}" is not supported: this cluster is IPv4 single-stack (use SingleStack)` });
  }
  return out;
}

/** resolv.conf limits as Kubernetes has them: 3 nameservers, 32 search domains. */
function validateDnsConfig(spec: PodSpec, path: string): Violation[] {
  const out: Violation[] = [];
  const cfg = spec.dnsConfig;
  if (spec.dnsPolicy === "None" && (cfg?.nameservers.length ?? 0) === 0) {
    out.push({ field: `${path}.dnsConfig.nameservers`, message: 'required: at least one nameserver when dnsPolicy is "None"' });
  }
  if (!cfg) return out;
  if (cfg.nameservers.length > 3) out.push({ field: `${path}.dnsConfig.nameservers`, message: `at most 3 nameservers, got ${cfg.nameservers.length}` });
  cfg.nameservers.forEach((ns, i) => {
    if (!IPV4.test(ns) && !/^[0-9a-fA-F:]+$/.test(ns)) out.push({ field: `${path}.dnsConfig.nameservers[${i}]`, message: `"${ns}" must be an IP address` });
  });
  if (cfg.searches.length > 32) out.push({ field: `${path}.dnsConfig.searches`, message: `at most 32 search domains, got ${cfg.searches.length}` });
  cfg.searches.forEach((d, i) => out.push(...at(`${path}.dnsConfig.searches[${i}]`, validateDNS1123Subdomain(d.replace(/\.$/, "")))));
  return out;
}
