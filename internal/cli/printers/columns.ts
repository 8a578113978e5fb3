// The columns `get` prints per kind, after NAME (and NAMESPACE with -A). `wide` columns are
// appended with -o wide. A kind without an entry here gets just AGE.
import type { ApiObject } from "../../api/registry.ts";
import { DEFAULT_CLASS_ANNOTATION } from "../../api/storage.ts";
import { age, formatLabels } from "./table.ts";
import { podReady, podRestarts, podStatus } from "./pod-status.ts";

export interface KindColumns {
  /** Kinds whose names say nothing (events) leave out the NAME column. */
  noName?: boolean;
  /** What the NAME column shows, when more than the name ("local-path (default)"). */
  name?(obj: any): string;
  header: string[];
  row(obj: any, now: number): string[];
  wideHeader?: string[];
  wideRow?(obj: any): string[];
}

const none = (s: string | undefined) => (s ? s : "<none>");
const created = (o: ApiObject, now: number) => age(o.metadata?.creationTimestamp, now);

function selectorString(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values: string[] }[] } | undefined): string {
  if (!sel) return "<none>";
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === "Exists") parts.push(e.key);
    else if (e.operator === "DoesNotExist") parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === "In" ? "in" : "notin"} (${e.values.join(",")})`);
  }
  return parts.length ? parts.join(",") : "<none>";
}

const templateColumns = {
  wideHeader: ["CONTAINERS", "IMAGES", "SELECTOR"],
  wideRow: (o: any) => {
    const cs = o.spec?.template?.spec?.containers ?? [];
    return [none(cs.map((c: any) => c.name).join(",")), none(cs.map((c: any) => c.image).join(",")), selectorString(o.spec?.selector)];
  },
};

/** "80/TCP", "80:30080/TCP", joined by commas. */
export function servicePorts(svc: any): string {
  const ports = svc.spec?.ports ?? [];
  if (ports.length === 0) return "<none>";
  return ports.map((p: any) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol || "TCP"}`).join(",");
}

export function nodeReady(node: any): string {
  const c = (node.status?.conditions ?? []).find((x: any) => x.type === "Ready");
  let s = c?.status === "True" ? "Ready" : c?.status === "False" ? "NotReady" : "Unknown";
  if (node.spec?.unschedulable) s += ",SchedulingDisabled";
  return s;
}

export function nodeRoles(node: any): string {
  const roles = Object.keys(node.metadata?.labels ?? {})
    .filter((k) => k.startsWith("node-role.kubernetes.io/"))
    .map((k) => k.slice("node-role.kubernetes.io/".length))
    .filter(Boolean);
  return roles.length ? roles.sort().join(",") : "<none>";
}

function nodeAddress(node: any, type: string): string {
  return none((node.status?.addresses ?? []).find((a: any) => a.type === type)?.address);
}

export function endpointsList(ep: any, max = 3): string {
  const all: string[] = [];
  for (const s of ep.subsets ?? []) {
    for (const a of s.addresses ?? []) {
      if ((s.ports ?? []).length === 0) all.push(a.ip);
      for (const p of s.ports ?? []) all.push(`${a.ip}:${p.port}`);
    }
  }
  if (all.length === 0) return "<none>";
  return all.length > max ? `${all.slice(0, max).join(",")} + ${all.length - max} more...` : all.join(",");
}

/** "pod/web-1", or just "node" for an event about no object in particular. */
const eventObject = (e: any) => {
  const kind = (e.involvedObject?.kind ?? "").toLowerCase();
  return e.involvedObject?.name ? `${kind}/${e.involvedObject.name}` : kind;
};

export const kindColumns: Record<string, KindColumns> = {
  Pod: {
    header: ["READY", "STATUS", "RESTARTS", "AGE"],
    row: (p, now) => [podReady(p), podStatus(p), String(podRestarts(p)), created(p, now)],
    wideHeader: ["IP", "NODE"],
    wideRow: (p) => [none(p.status?.podIp), none(p.spec?.nodeName)],
  },
  Deployment: {
    header: ["READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
    row: (d, now) => [
      `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 0}`,
      String(d.status?.updatedReplicas ?? 0),
      String(d.status?.availableReplicas ?? 0),
      created(d, now),
    ],
    ...templateColumns,
  },
  ReplicaSet: {
    header: ["DESIRED", "CURRENT", "READY", "AGE"],
    row: (rs, now) => [String(rs.spec?.replicas ?? 0), String(rs.status?.replicas ?? 0), String(rs.status?.readyReplicas ?? 0), created(rs, now)],
    ...templateColumns,
  },
  Service: {
    header: ["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
    row: (s, now) => {
      const external = [...(s.spec?.externalIps ?? []), ...(s.status?.loadBalancer?.ingress ?? []).map((i: any) => i.ip || i.hostname)];
      const ext = s.spec?.type === "ExternalName" ? s.spec.externalName : external.join(",") || (s.spec?.type === "LoadBalancer" ? "<pending>" : "<none>");
      return [s.spec?.type || "ClusterIP", none(s.spec?.clusterIp), ext, servicePorts(s), created(s, now)];
    },
    wideHeader: ["SELECTOR"],
    wideRow: (s) => [formatLabels(s.spec?.selector)],
  },
  Endpoints: {
    header: ["ENDPOINTS", "AGE"],
    row: (e, now) => [endpointsList(e), created(e, now)],
  },
  Node: {
    header: ["STATUS", "ROLES", "AGE", "VERSION"],
    row: (n, now) => [nodeReady(n), nodeRoles(n), created(n, now), none(n.status?.nodeInfo?.kubeletVersion)],
    wideHeader: ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
    wideRow: (n) => [
      nodeAddress(n, "InternalIP"),
      nodeAddress(n, "ExternalIP"),
      none(n.status?.nodeInfo?.osImage),
      none(n.status?.nodeInfo?.kernelVersion),
      none(n.status?.nodeInfo?.containerRuntimeVersion),
    ],
  },
  Namespace: {
    header: ["STATUS", "AGE"],
    row: (n, now) => [n.status?.phase || "Active", created(n, now)],
  },
  ConfigMap: {
    header: ["DATA", "AGE"],
    row: (c, now) => [String(Object.keys(c.data ?? {}).length + Object.keys(c.binaryData ?? {}).length), created(c, now)],
  },
  ServiceAccount: {
    header: ["SECRETS", "AGE"],
    row: (sa, now) => [String(sa.secrets?.length ?? 0), created(sa, now)],
  },
  Secret: {
    header: ["TYPE", "DATA", "AGE"],
    row: (s, now) => [s.type || "Opaque", String(Object.keys(s.data ?? {}).length), created(s, now)],
  },
  PersistentVolume: {
    header: ["CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS", "REASON", "AGE"],
    row: (pv, now) => [
      pv.spec?.capacity?.storage ?? "",
      accessModes(pv.spec?.accessModes),
      pv.spec?.persistentVolumeReclaimPolicy ?? "",
      pv.status?.phase ?? "",
      pv.spec?.claimRef ? `${pv.spec.claimRef.namespace}/${pv.spec.claimRef.name}` : "",
      pv.spec?.storageClassName ?? "",
      pv.status?.reason ?? "",
      created(pv, now),
    ],
  },
  PersistentVolumeClaim: {
    header: ["STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"],
    row: (c, now) => [
      c.status?.phase ?? "",
      c.spec?.volumeName ?? "",
      c.status?.capacity?.storage ?? "",
      accessModes(c.status?.accessModes),
      c.spec?.storageClassName ?? "",
      created(c, now),
    ],
  },
  StorageClass: {
    name: (sc) => `${sc.metadata?.name ?? ""}${sc.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === "true" ? " (default)" : ""}`,
    header: ["PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
    row: (sc, now) => [sc.provisioner ?? "", sc.reclaimPolicy ?? "", sc.volumeBindingMode ?? "", String(sc.allowVolumeExpansion ?? false), created(sc, now)],
  },
  Lease: {
    header: ["HOLDER", "AGE"],
    row: (l, now) => [l.spec?.holderIdentity ?? "", created(l, now)],
  },
  Event: {
    noName: true,
    header: ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
    row: (e, now) => [age(e.lastTimestamp ?? e.firstTimestamp ?? e.metadata?.creationTimestamp, now), e.type ?? "", e.reason ?? "", eventObject(e), (e.message ?? "").trim()],
  },
};

// kubectl's columns for RoleBindings and ClusterRoleBindings.
const bindingColumns: KindColumns = {
  header: ["ROLE", "AGE"],
  row: (b, now) => [`${b.roleRef?.kind ?? ""}/${b.roleRef?.name ?? ""}`, created(b, now)],
  wideHeader: ["USERS", "GROUPS", "SERVICEACCOUNTS"],
  wideRow: (b) => {
    const of = (kind: string, f: (s: any) => string) => b.subjects.filter((s: any) => s.kind === kind).map(f).join(", ");
    return [of("User", (s) => s.name), of("Group", (s) => s.name), of("ServiceAccount", (s) => `${s.namespace}/${s.name}`)];
  },
};
kindColumns.RoleBinding = bindingColumns;
kindColumns.ClusterRoleBinding = bindingColumns;

const MODE_SHORT: Record<string, string> = { ReadWriteOnce: "RWO", ReadOnlyMany: "ROX", ReadWriteMany: "RWX", ReadWriteOncePod: "RWOP" };

function accessModes(modes: string[] | undefined): string {
  return (modes ?? []).map((m) => MODE_SHORT[m] ?? m).join(",");
}

export const defaultColumns: KindColumns = {
  header: ["AGE"],
  row: (o, now) => [created(o, now)],
};

export function columnsFor(kindName: string): KindColumns {
  return kindColumns[kindName] ?? defaultColumns;
}
