// `describe`: a readable page per object. Every kind gets Name, Namespace, Labels, Annotations
// and its Events; pods, deployments, replica sets, services, nodes, namespaces, config maps and
// secrets get their essentials; other kinds show the rest of the object as YAML.
import type { ApiObject, Kind } from "../../api/registry.ts";
import { containerFields, podTemplateLines } from "./describe-pod.ts";
import { formatTime, mapLines, renderEvents, renderFields, renderTable, type EventLike, type Field } from "./describe-layout.ts";
import { endpointsList, nodeReady, nodeRoles } from "./columns.ts";
import { podStatus } from "./pod-status.ts";
import { describePersistentVolume, describePersistentVolumeClaim, describeStorageClass } from "./describe-storage.ts";
import { toKubeObject, toYaml } from "./object.ts";
import { formatLabels } from "./table.ts";

/** What describe reads beyond the object itself. */
export interface DescribeExtras {
  events: EventLike[];
  /** Services: the Endpoints of the same name. */
  endpoints?: ApiObject;
  /** Nodes: the pods bound to the node; claims: the pods using the claim. */
  pods?: ApiObject[];
}

function header(o: ApiObject, namespaced: boolean): Field[] {
  const m = o.metadata;
  return [
    ["Name", m?.name ?? ""],
    ["Namespace", namespaced ? m?.namespace ?? "" : undefined],
    ["Labels", mapLines(m?.labels)],
    ["Annotations", mapLines(m?.annotations, ": ")],
  ];
}

function controlledBy(o: ApiObject): string | undefined {
  const ref = o.metadata?.ownerReferences.find((r) => r.controller);
  return ref ? `${ref.kind}/${ref.name}` : undefined;
}

function conditions(list: { type: string; status: string; reason?: string }[] | undefined, withReason = false): string[] {
  const rows = (list ?? []).map((c) => (withReason ? [c.type, c.status, c.reason ?? ""] : [c.type, c.status]));
  return renderTable("Conditions", withReason ? ["Type", "Status", "Reason"] : ["Type", "Status"], rows);
}

function describePod(p: any): { fields: Field[]; after: string[] } {
  const spec = p.spec ?? {};
  const st = p.status ?? {};
  const fields: Field[] = [
    ["Priority", String(spec.priority ?? 0)],
    ["Service Account", spec.serviceAccountName || undefined],
    ["Node", spec.nodeName ? `${spec.nodeName}${st.hostIp ? `/${st.hostIp}` : ""}` : "<none>"],
    ["Start Time", formatTime(st.startTime)],
    ["Status", podStatus(p)],
    ["Reason", st.reason || undefined],
    ["Message", st.message || undefined],
    ["IP", st.podIp || "<none>"],
    ["Controlled By", controlledBy(p)],
    ["QoS Class", st.qosClass || undefined],
    ["Node-Selectors", mapLines(spec.nodeSelector)],
    ["Tolerations", (spec.tolerations ?? []).length ? spec.tolerations.map((t: any) => `${t.key}${t.operator === "Exists" ? "" : `=${t.value}`}:${t.effect || "*"}`) : "<none>"],
  ];
  const statuses = new Map<string, any>((st.containerStatuses ?? []).map((c: any) => [c.name, c]));
  const initStatuses = new Map<string, any>((st.initContainerStatuses ?? []).map((c: any) => [c.name, c]));
  const after: string[] = [];
  const containers = (title: string, list: any[], sts: Map<string, any>) => {
    if (list.length === 0) return;
    after.push(`${title}:`);
    for (const c of list) {
      after.push(`  ${c.name}:`);
      after.push(...renderFields(containerFields(c, sts.get(c.name)), 4));
    }
  };
  containers("Init Containers", spec.initContainers ?? [], initStatuses);
  containers("Containers", spec.containers ?? [], statuses);
  after.push(...conditions(st.conditions));
  const vols = (spec.volumes ?? []).map((v: any) => `${v.name}: ${volumeSource(v)}`);
  after.push(...renderFields([["Volumes", vols.length ? vols : "<none>"]]));
  return { fields, after };
}

function volumeSource(v: any): string {
  if (v.emptyDir) return `EmptyDir${v.emptyDir.medium ? ` (${v.emptyDir.medium})` : ""}`;
  if (v.hostPath) return `HostPath ${v.hostPath.path}`;
  if (v.configMap) return `ConfigMap ${v.configMap.name}`;
  if (v.secret) return `Secret ${v.secret.secretName}`;
  if (v.persistentVolumeClaim) return `PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}${v.persistentVolumeClaim.readOnly ? " (read-only)" : ""}`;
  if (v.downwardAPI ?? v.downwardApi) return "DownwardAPI";
  if (v.projected) return `Projected (${(v.projected.sources ?? []).map((s: any) => Object.keys(s)[0]).join(", ")})`;
  return "<unknown>";
}

function selector(sel: any): string {
  return formatLabels(sel?.matchLabels) + ((sel?.matchExpressions ?? []).length ? " (+ expressions)" : "");
}

function describeDeployment(d: any): { fields: Field[]; after: string[] } {
  const s = d.spec ?? {};
  const st = d.status ?? {};
  const ru = s.strategy?.rollingUpdate;
  const fields: Field[] = [
    ["CreationTimestamp", formatTime(d.metadata?.creationTimestamp)],
    ["Selector", selector(s.selector)],
    ["Replicas", `${s.replicas ?? 0} desired | ${st.updatedReplicas ?? 0} updated | ${st.replicas ?? 0} total | ${st.availableReplicas ?? 0} available | ${st.unavailableReplicas ?? 0} unavailable`],
    ["StrategyType", s.strategy?.type || "RollingUpdate"],
    ["MinReadySeconds", String(s.minReadySeconds ?? 0)],
    ["RollingUpdateStrategy", ru ? `${ru.maxUnavailable} max unavailable, ${ru.maxSurge} max surge` : undefined],
    ["Paused", s.paused ? "true" : undefined],
  ];
  return { fields, after: [...podTemplateLines(s.template), ...conditions(st.conditions, true)] };
}

function describeReplicaSet(rs: any): { fields: Field[]; after: string[] } {
  const s = rs.spec ?? {};
  const st = rs.status ?? {};
  const fields: Field[] = [
    ["Selector", selector(s.selector)],
    ["Controlled By", controlledBy(rs)],
    ["Replicas", `${st.replicas ?? 0} current / ${s.replicas ?? 0} desired`],
    ["Ready Replicas", String(st.readyReplicas ?? 0)],
  ];
  return { fields, after: [...podTemplateLines(s.template), ...conditions(st.conditions, true)] };
}

function describeService(svc: any, extras: DescribeExtras): { fields: Field[]; after: string[] } {
  const s = svc.spec ?? {};
  const fields: Field[] = [
    ["Selector", formatLabels(s.selector)],
    ["Type", s.type || "ClusterIP"],
    ["IP Family Policy", s.ipFamilyPolicy || undefined],
    ["IP Families", (s.ipFamilies ?? []).length ? s.ipFamilies.join(",") : undefined],
    ["IP", s.clusterIp || "<none>"],
    ["External IPs", (s.externalIps ?? []).length ? s.externalIps.join(",") : undefined],
    ["External Name", s.externalName || undefined],
  ];
  for (const p of s.ports ?? []) {
    const proto = p.protocol || "TCP";
    fields.push(["Port", `${p.name || "<unset>"}  ${p.port}/${proto}`]);
    fields.push(["TargetPort", `${p.targetPort || p.port}/${proto}`]);
    if (p.nodePort) fields.push(["NodePort", `${p.name || "<unset>"}  ${p.nodePort}/${proto}`]);
  }
  fields.push(["Endpoints", extras.endpoints ? endpointsList(extras.endpoints, 10) : "<none>"]);
  fields.push(["Session Affinity", s.sessionAffinity || "None"]);
  if (s.sessionAffinity === "ClientIP") fields.push(["Session Affinity Timeout", `${s.sessionAffinityConfig?.clientIp?.timeoutSeconds ?? 10_800}s`]);
  if (s.externalTrafficPolicy) fields.push(["External Traffic Policy", s.externalTrafficPolicy]);
  if (s.internalTrafficPolicy) fields.push(["Internal Traffic Policy", s.internalTrafficPolicy]);
  return { fields, after: [] };
}

function describeNode(n: any, extras: DescribeExtras): { fields: Field[]; after: string[] } {
  const s = n.spec ?? {};
  const st = n.status ?? {};
  const info = st.nodeInfo ?? {};
  const fields: Field[] = [
    ["Roles", nodeRoles(n)],
    ["CreationTimestamp", formatTime(n.metadata?.creationTimestamp)],
    ["Status", nodeReady(n)],
    ["Taints", (s.taints ?? []).length ? s.taints.map((t: any) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`) : "<none>"],
    ["Unschedulable", String(s.unschedulable ?? false)],
    ["PodCIDR", s.podCidr || undefined],
  ];
  const after = [
    ...conditions(st.conditions, true),
    ...renderFields([
      ["Addresses", (st.addresses ?? []).length ? st.addresses.map((a: any) => `${a.type}: ${a.address}`) : "<none>"],
      ["Capacity", mapLines(st.capacity, ": ")],
      ["Allocatable", mapLines(st.allocatable, ": ")],
      [
        "System Info",
        undefined,
        [
          ["Machine ID", info.machineId || ""],
          ["Kernel Version", info.kernelVersion || ""],
          ["OS Image", info.osImage || ""],
          ["Operating System", info.operatingSystem || ""],
          ["Architecture", info.architecture || ""],
          ["Container Runtime Version", info.containerRuntimeVersion || ""],
          ["Agent Version", info.kubeletVersion || ""],
        ],
      ],
    ]),
  ];
  if (extras.pods) {
    const rows = extras.pods.map((p: any) => [p.metadata?.namespace ?? "", p.metadata?.name ?? "", podStatus(p)]);
    after.push(...renderTable(`Pods (${rows.length} on this node)`, ["Namespace", "Name", "Status"], rows));
  }
  return { fields, after };
}

function describeConfigMap(cm: any): { fields: Field[]; after: string[] } {
  const after = ["", "Data", "===="];
  for (const [k, v] of Object.entries(cm.data ?? {}).sort(([a], [b]) => a.localeCompare(b))) after.push(`${k}:`, "----", String(v).replace(/\n$/, ""), "");
  const bin = Object.entries(cm.binaryData ?? {}) as [string, Uint8Array][];
  if (bin.length) {
    after.push("BinaryData", "====");
    for (const [k, v] of bin) after.push(`${k}: ${v.length} bytes`);
  }
  return { fields: [], after };
}

function describeSecret(s: any): { fields: Field[]; after: string[] } {
  const data = Object.entries(s.data ?? {}) as [string, Uint8Array][];
  const rows = data.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}:  ${v.length} bytes`);
  return { fields: [["Type", s.type || "Opaque"]], after: ["", "Data", "====", ...rows] };
}

function describeGeneric(kind: Kind, o: ApiObject): { fields: Field[]; after: string[] } {
  const kube = toKubeObject(kind, o);
  delete kube.apiVersion;
  delete kube.kind;
  delete kube.metadata;
  const rest = Object.keys(kube).length ? toYaml(kube).trimEnd().split("\n") : [];
  return { fields: [["CreationTimestamp", formatTime(o.metadata?.creationTimestamp)]], after: rest };
}

export function describeObject(kind: Kind, obj: ApiObject, extras: DescribeExtras, now: number = Date.now()): string {
  let body: { fields: Field[]; after: string[] };
  switch (kind.kind) {
    case "Pod": body = describePod(obj); break;
    case "Deployment": body = describeDeployment(obj); break;
    case "ReplicaSet": body = describeReplicaSet(obj); break;
    case "Service": body = describeService(obj, extras); break;
    case "Node": body = describeNode(obj, extras); break;
    case "Namespace": body = { fields: [["Status", (obj as any).status?.phase || "Active"]], after: [] }; break;
    case "ConfigMap": body = describeConfigMap(obj); break;
    case "Secret": body = describeSecret(obj); break;
    case "StorageClass": body = describeStorageClass(obj); break;
    case "PersistentVolume": body = describePersistentVolume(obj); break;
    case "PersistentVolumeClaim": body = describePersistentVolumeClaim(obj, (extras.pods ?? []).map((p) => p.metadata?.name ?? "")); break;
    default: body = describeGeneric(kind, obj);
  }
  const lines = [
    ...renderFields([...header(obj, kind.namespaced), ...body.fields]),
    ...body.after,
    ...renderEvents(extras.events, now),
  ];
  return `${lines.join("\n")}\n`;
}
