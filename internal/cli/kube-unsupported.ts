// What Kubernetes has and Skiff does not, per message: the decoder (kube-json.ts) tells a real
// Kubernetes field Skiff lacks ("unsupported field … (Skiff does not support it yet)") from a
// name Kubernetes does not have either ("unknown field … (did you mean …?)").
//
// Data, not code: keyed by our proto message (without the package), listing the Kubernetes JSON
// names of the fields the matching Kubernetes type has (as of Kubernetes 1.33) and our proto
// lacks. A message shared by several Kubernetes types lists the union. When a field is added to
// a .proto, remove it here (kube-unsupported.test.ts fails while both have it).
//
// `values`: values of fields we have that Skiff refuses (the apiserver refuses them too; listing
// them here lets apply report them together with the rest of a document's problems).

export interface UnsupportedEntry {
  fields?: readonly string[];
  values?: Readonly<Record<string, readonly string[]>>;
}

const VOLUME_SOURCES_SKIFF_LACKS = [
  "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume", "flocker",
  "gcePersistentDisk", "glusterfs", "iscsi", "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd",
  "scaleIO", "storageos", "vsphereVolume",
];

export const KUBE_FIELDS_SKIFF_LACKS: Readonly<Record<string, UnsupportedEntry>> = {
  ObjectMeta: { fields: ["selfLink", "managedFields"] },
  NamespaceStatus: { fields: ["conditions"] },
  NodeSpec: { fields: ["configSource", "externalID"] },
  NodeStatus: { fields: ["phase", "volumesInUse", "volumesAttached", "config", "runtimeHandlers", "features"] },
  NodeSystemInfo: { fields: ["systemUUID", "kubeProxyVersion", "swap"] },
  PodSpec: {
    fields: [
      "ephemeralContainers", "serviceAccount", "shareProcessNamespace", "priorityClassName", "readinessGates",
      "runtimeClassName", "preemptionPolicy", "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os",
      "hostUsers", "schedulingGates", "resourceClaims", "resources",
    ],
  },
  Container: {
    fields: ["resizePolicy", "volumeDevices", "stdinOnce"],
  },
  ResourceRequirements: { fields: ["claims"] },
  VolumeMount: { fields: ["recursiveReadOnly", "mountPropagation"] },
  SecurityContext: { fields: ["seLinuxOptions", "windowsOptions", "appArmorProfile"] },
  PodSecurityContext: {
    fields: ["seLinuxOptions", "windowsOptions", "supplementalGroupsPolicy", "fsGroupChangePolicy", "appArmorProfile", "seLinuxChangePolicy"],
  },
  PodAffinityTerm: { fields: ["namespaceSelector", "matchLabelKeys", "mismatchLabelKeys"] },
  Volume: { fields: [...VOLUME_SOURCES_SKIFF_LACKS, "gitRepo", "ephemeral", "image"] },
  PodStatus: { fields: ["hostIPs", "ephemeralContainerStatuses", "resize", "resourceClaimStatuses", "observedGeneration"] },
  ContainerStatus: { fields: ["allocatedResources", "resources", "volumeMounts", "user", "allocatedResourcesStatus", "stopSignal"] },
  ReplicaSetStatus: { fields: ["terminatingReplicas"] },
  DeploymentStatus: { fields: ["terminatingReplicas"] },
  ServiceSpec: {
    fields: [
      "loadBalancerIP", "loadBalancerSourceRanges", "healthCheckNodePort",
      "allocateLoadBalancerNodePorts", "loadBalancerClass", "trafficDistribution",
    ],
    values: {
      // This cluster is IPv4 single-stack.
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: ["PreferDualStack", "RequireDualStack"],
    },
  },
  LoadBalancerIngress: { fields: ["ipMode", "ports"] },
  // nfs is a field of ours: the apiserver refuses it with its own reason (no agent here mounts NFS).
  PersistentVolumeSpec: { fields: [...VOLUME_SOURCES_SKIFF_LACKS.filter((f) => f !== "nfs"), "volumeAttributesClassName"] },
  PersistentVolumeStatus: { fields: ["lastPhaseTransitionTime"] },
  PersistentVolumeClaimSpec: { fields: ["dataSource", "dataSourceRef", "volumeAttributesClassName"] },
  PersistentVolumeClaimStatus: {
    fields: ["allocatedResources", "allocatedResourceStatuses", "currentVolumeAttributesClassName", "modifyVolumeStatus"],
  },
  LeaseSpec: { fields: ["strategy", "preferredHolder"] },
  Event: { fields: ["eventTime", "series", "related"] },
};

/** The entry of a message by its full proto name ("skiff.v1alpha1.PodSpec"). */
export function unsupportedEntry(typeName: string): UnsupportedEntry | undefined {
  return KUBE_FIELDS_SKIFF_LACKS[typeName.slice(typeName.lastIndexOf(".") + 1)];
}

/** Edit distance (insertions, deletions, substitutions), ignoring case. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length];
}

/**
 * The known name closest to a misspelt one, if close enough to be a typo: at most one edit per
 * four letters (two for short names would suggest unrelated fields), and a unique best.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 4)));
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
      tie = false;
    } else if (d === bestDistance && k !== best) {
      tie = true;
    }
  }
  return best !== undefined && bestDistance <= limit && !tie ? best : undefined;
}
