// Server-side defaults per kind, applied on create and update before validation, as Kubernetes
// does, so that stored objects are explicit and clients need not repeat the defaults.
import { create } from "@bufbuild/protobuf";
import { ClientIPConfigSchema, SessionAffinityConfigSchema } from "../../gen/skiff/v1alpha1/service_pb.js";
import { PodStatusSchema, type Container, type PodSpec, type Probe } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { NamespaceStatusSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { DeploymentStrategySchema, RollingUpdateDeploymentSchema } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import {
  PersistentVolumeClaimStatusSchema,
  PersistentVolumeStatusSchema,
} from "../../gen/skiff/v1alpha1/storage_pb.js";

function defaultProbe(p: Probe | undefined): void {
  if (!p) return;
  if (p.timeoutSeconds === 0) p.timeoutSeconds = 1;
  if (p.periodSeconds === 0) p.periodSeconds = 10;
  if (p.successThreshold === 0) p.successThreshold = 1;
  if (p.failureThreshold === 0) p.failureThreshold = 3;
  if (p.httpGet) {
    if (p.httpGet.path === "") p.httpGet.path = "/";
    if (p.httpGet.scheme === "") p.httpGet.scheme = "HTTP";
  }
}

/** Like Kubernetes: ":latest" or no tag means the image moves, so pull it every time. */
export function defaultPullPolicy(image: string): string {
  if (image.includes("@")) return "IfNotPresent";
  const lastPart = image.slice(image.lastIndexOf("/") + 1);
  const tag = lastPart.includes(":") ? lastPart.slice(lastPart.indexOf(":") + 1) : "";
  return tag === "" || tag === "latest" ? "Always" : "IfNotPresent";
}

function defaultContainer(c: Container): void {
  if (c.imagePullPolicy === "") c.imagePullPolicy = defaultPullPolicy(c.image);
  for (const p of c.ports) if (p.protocol === "") p.protocol = "TCP";
  defaultProbe(c.livenessProbe);
  defaultProbe(c.readinessProbe);
  defaultProbe(c.startupProbe);
}

export function defaultPodSpec(spec: PodSpec | undefined): void {
  if (!spec) return;
  if (spec.restartPolicy === "") spec.restartPolicy = "Always";
  if (spec.dnsPolicy === "") spec.dnsPolicy = "ClusterFirst";
  if (spec.schedulerName === "") spec.schedulerName = "default-scheduler";
  if (spec.terminationGracePeriodSeconds === undefined) spec.terminationGracePeriodSeconds = 30n;
  for (const c of spec.initContainers) defaultContainer(c);
  for (const c of spec.containers) defaultContainer(c);
  for (const t of spec.tolerations) if (t.operator === "") t.operator = "Equal";
}

export const kindDefaults: Record<string, (obj: any) => void> = {
  Namespace(ns) {
    ns.status ??= create(NamespaceStatusSchema);
    if (!ns.status.phase) ns.status.phase = "Active";
  },
  Pod(pod) {
    defaultPodSpec(pod.spec);
    pod.status ??= create(PodStatusSchema);
    if (!pod.status.phase) pod.status.phase = "Pending";
  },
  ReplicaSet(rs) {
    if (rs.spec) {
      if (rs.spec.replicas === undefined) rs.spec.replicas = 1;
      defaultPodSpec(rs.spec.template?.spec);
    }
  },
  Deployment(d) {
    const s = d.spec;
    if (!s) return;
    if (s.replicas === undefined) s.replicas = 1;
    if (s.revisionHistoryLimit === undefined) s.revisionHistoryLimit = 10;
    if (s.progressDeadlineSeconds === undefined) s.progressDeadlineSeconds = 600;
    s.strategy ??= create(DeploymentStrategySchema);
    if (s.strategy.type === "") s.strategy.type = "RollingUpdate";
    if (s.strategy.type === "RollingUpdate") {
      s.strategy.rollingUpdate ??= create(RollingUpdateDeploymentSchema);
      if (s.strategy.rollingUpdate.maxSurge === "") s.strategy.rollingUpdate.maxSurge = "25%";
      if (s.strategy.rollingUpdate.maxUnavailable === "") s.strategy.rollingUpdate.maxUnavailable = "25%";
    }
    defaultPodSpec(s.template?.spec);
  },
  Service(svc) {
    const s = svc.spec;
    if (!s) return;
    if (s.type === "") s.type = s.externalName ? "ExternalName" : "ClusterIP";
    if (s.sessionAffinity === "") s.sessionAffinity = "None";
    if (s.sessionAffinity === "ClientIP") {
      s.sessionAffinityConfig ??= create(SessionAffinityConfigSchema);
      s.sessionAffinityConfig.clientIp ??= create(ClientIPConfigSchema);
      if (s.sessionAffinityConfig.clientIp.timeoutSeconds === 0) s.sessionAffinityConfig.clientIp.timeoutSeconds = 10_800;
    }
    // Kubernetes' address family fields, for a cluster that is IPv4 single-stack; an ExternalName
    // Service has no cluster IP, so none (also when it had them as another type).
    if (s.type === "ExternalName") {
      s.ipFamilies = [];
      s.ipFamilyPolicy = "";
    } else {
      if (s.ipFamilies.length === 0) s.ipFamilies = ["IPv4"];
      if (s.ipFamilyPolicy === "") s.ipFamilyPolicy = "SingleStack";
    }
    for (const p of s.ports) {
      if (p.protocol === "") p.protocol = "TCP";
      if (p.targetPort === "") p.targetPort = String(p.port);
    }
  },
  Secret(secret) {
    if (secret.type === "") secret.type = "Opaque";
    // stringData is write-only: merge into data, as Kubernetes does.
    for (const [k, v] of Object.entries(secret.stringData as Record<string, string>)) {
      secret.data[k] = new TextEncoder().encode(v);
    }
    secret.stringData = {};
  },
  PersistentVolume(pv) {
    if (pv.spec) {
      if (pv.spec.persistentVolumeReclaimPolicy === "") pv.spec.persistentVolumeReclaimPolicy = "Retain";
      if (pv.spec.volumeMode === "") pv.spec.volumeMode = "Filesystem";
    }
    pv.status ??= create(PersistentVolumeStatusSchema);
    if (!pv.status.phase) pv.status.phase = "Pending";
  },
  StorageClass(sc) {
    if (sc.reclaimPolicy === "") sc.reclaimPolicy = "Delete";
    if (sc.volumeBindingMode === "") sc.volumeBindingMode = "Immediate";
  },
  PersistentVolumeClaim(pvc) {
    if (pvc.spec && pvc.spec.volumeMode === "") pvc.spec.volumeMode = "Filesystem";
    pvc.status ??= create(PersistentVolumeClaimStatusSchema);
    if (!pvc.status.phase) pvc.status.phase = "Pending";
  },
  Event(ev) {
    if (ev.count === 0) ev.count = 1;
    if (ev.type === "") ev.type = "Normal";
  },
};
