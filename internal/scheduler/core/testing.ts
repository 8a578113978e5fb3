// Builders for scheduler tests and benchmarks: nodes and pods that say only what matters.
import { create } from "@bufbuild/protobuf";
import { NodeSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type AffinitySchema, type Affinity, type ContainerPort, type Pod, type Toleration } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { OwnerReferenceSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { TaintLike } from "./node-info.ts";

export interface NodeOpts {
  cpu?: string;
  memory?: string;
  pods?: string;
  extra?: Record<string, string>;
  labels?: Record<string, string>;
  taints?: TaintLike[];
  unschedulable?: boolean;
  /** "True" (default), "False", "Unknown", or null for no Ready condition at all. */
  ready?: string | null;
}

export function makeNode(name: string, o: NodeOpts = {}): Node {
  const allocatable: Record<string, string> = { cpu: o.cpu ?? "4", memory: o.memory ?? "8Gi", pods: o.pods ?? "110", ...o.extra };
  const ready = o.ready === undefined ? "True" : o.ready;
  return create(NodeSchema, {
    metadata: { name, uid: `uid-${name}`, labels: { "kubernetes.io/hostname": name, ...o.labels } },
    spec: { unschedulable: o.unschedulable ?? false, taints: o.taints ?? [] },
    status: { capacity: allocatable, allocatable, conditions: ready === null ? [] : [{ type: "Ready", status: ready }] },
  });
}

export interface PodOpts {
  namespace?: string;
  uid?: string;
  node?: string;
  cpu?: string;
  memory?: string;
  extra?: Record<string, string>;
  /** Requests of one init container. */
  init?: Record<string, string>;
  labels?: Record<string, string>;
  owner?: string;
  phase?: string;
  nodeSelector?: Record<string, string>;
  affinity?: MessageInitShape<typeof AffinitySchema>;
  tolerations?: Partial<Toleration>[];
  ports?: Partial<ContainerPort>[];
  hostNetwork?: boolean;
}

let seq = 0;

export function makePod(name: string, o: PodOpts = {}): Pod {
  const requests: Record<string, string> = { ...o.extra };
  if (o.cpu) requests.cpu = o.cpu;
  if (o.memory) requests.memory = o.memory;
  const owner: MessageInitShape<typeof OwnerReferenceSchema>[] = o.owner ? [{ kind: "ReplicaSet", name: o.owner, uid: `uid-rs-${o.owner}`, controller: true }] : [];
  return create(PodSchema, {
    metadata: { name, namespace: o.namespace ?? "default", uid: o.uid ?? `uid-${name}-${++seq}`, labels: o.labels ?? {}, ownerReferences: owner },
    spec: {
      nodeName: o.node ?? "",
      schedulerName: "default-scheduler",
      nodeSelector: o.nodeSelector ?? {},
      affinity: o.affinity as Affinity | undefined,
      tolerations: (o.tolerations ?? []) as Toleration[],
      hostNetwork: o.hostNetwork ?? false,
      initContainers: o.init ? [{ name: "init", image: "busybox", resources: { requests: o.init } }] : [],
      containers: [{ name: "main", image: "busybox", resources: { requests }, ports: (o.ports ?? []) as ContainerPort[] }],
    },
    status: { phase: o.phase ?? (o.node ? "Running" : "Pending") },
  });
}

export { seededRandom as seededRng } from "../../util/seeded-random.ts";
