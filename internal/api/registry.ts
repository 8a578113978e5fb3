// The kind registry: one entry per kind. Everything generic (apiserver handlers, storage keys,
// the watch cache, typed clients, CLI lookup, manifest decoding) is driven from here, so adding
// a kind means a .proto plus one entry below.
import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { ObjectMeta } from "../../gen/skiff/v1alpha1/meta_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { NamespaceService } from "../../gen/skiff/v1alpha1/namespace_service_pb.js";
import { NodeSchema } from "../../gen/skiff/v1alpha1/node_pb.js";
import { NodeService } from "../../gen/skiff/v1alpha1/node_service_pb.js";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { ReplicaSetSchema } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { ReplicaSetService } from "../../gen/skiff/v1alpha1/replica_set_service_pb.js";
import { DeploymentSchema } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { DeploymentService } from "../../gen/skiff/v1alpha1/deployment_service_pb.js";
import { ServiceSchema } from "../../gen/skiff/v1alpha1/service_pb.js";
import { ServiceService } from "../../gen/skiff/v1alpha1/service_service_pb.js";
import { EndpointsSchema } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { EndpointsService } from "../../gen/skiff/v1alpha1/endpoints_service_pb.js";
import { ConfigMapSchema, SecretSchema } from "../../gen/skiff/v1alpha1/config_pb.js";
import { ConfigMapService } from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { SecretService } from "../../gen/skiff/v1alpha1/secret_service_pb.js";
import { PersistentVolumeClaimSchema, PersistentVolumeSchema, StorageClassSchema } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { StorageClassService } from "../../gen/skiff/v1alpha1/storage_class_service_pb.js";
import { PINNED_NODE_FIELD, pinnedNode } from "./storage.ts";
import { PersistentVolumeService } from "../../gen/skiff/v1alpha1/persistent_volume_service_pb.js";
import { PersistentVolumeClaimService } from "../../gen/skiff/v1alpha1/persistent_volume_claim_service_pb.js";
import { EventSchema, LeaseSchema } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { LeaseService } from "../../gen/skiff/v1alpha1/lease_service_pb.js";
import { EventService } from "../../gen/skiff/v1alpha1/event_service_pb.js";
import { ServiceAccountSchema } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import { ServiceAccountService } from "../../gen/skiff/v1alpha1/service_account_service_pb.js";
import type { UserInfo, Verb } from "../auth/types.ts";
import { admissionHooks } from "../auth/admission/index.ts";
import { kindDefaults } from "./defaults.ts";
import { kindValidators, statusValidators, type Violation } from "./validation.ts";
import { ClusterRoleBindingSchema, ClusterRoleSchema, RoleBindingSchema, RoleSchema } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { RoleService } from "../../gen/skiff/v1alpha1/role_service_pb.js";
import { ClusterRoleService } from "../../gen/skiff/v1alpha1/cluster_role_service_pb.js";
import { RoleBindingService } from "../../gen/skiff/v1alpha1/role_binding_service_pb.js";
import { ClusterRoleBindingService } from "../../gen/skiff/v1alpha1/cluster_role_binding_service_pb.js";
import { rbacDefaults, rbacValidators } from "./rbac.ts";

/** Every stored object: a message with metadata, and usually spec and status. */
export type ApiObject = Message & { metadata?: ObjectMeta; spec?: unknown; status?: unknown };

/** What an admission hook may read: other objects, from the apiserver's watch caches. */
export interface AdmissionContext {
  /** The Namespace object, or undefined when there is none. */
  namespace(name: string): Promise<ApiObject | undefined>;
  /** Every object of a kind, from the apiserver's watch cache (StorageClasses for the default class). */
  objects(kind: string): ApiObject[];
  /** Who writes (absent for the apiserver's own writes). */
  user?: UserInfo;
}

/**
 * Admission after validation, before storage, on create (`old` undefined) and update: throws a
 * ConnectError to refuse (PermissionDenied for a policy, InvalidArgument for bad input).
 */
export type AdmitHook = (obj: any, old: any | undefined, ctx: AdmissionContext) => void | Promise<void>;

/** Reads one field for field selectors ("spec.nodeName") from an object. */
export type FieldGetter = (obj: any) => string | undefined;

export interface Kind {
  /** "ReplicaSet" */
  kind: string;
  /** "replicasets": storage keys, CLI */
  plural: string;
  /** "replicaset" */
  singular: string;
  /** CLI aliases: "rs" */
  shortNames: string[];
  /** The Kubernetes apiVersion manifests use for this kind: "v1", "apps/v1", … */
  apiVersion: string;
  namespaced: boolean;
  /** Has a status written only through UpdateStatus. */
  hasStatus: boolean;
  schema: GenMessage<any>;
  service: GenService<any>;
  /** The field that carries the object in requests and responses ("replicaSet"). */
  field: string;
  /** Field selectors the apiserver supports, beyond metadata.name and metadata.namespace. */
  fields: Record<string, FieldGetter>;
  /**
   * A field (one of `fields`) by which the watch cache indexes watches that select one value of
   * it, so that an event reaches only those watches instead of being tested against all of them:
   * every node agent watches its own pods (`spec.nodeName=<node>`), like Kubernetes' cacher.
   */
  watchIndex?: string;
  /** Fills server-side defaults in place (idempotent). */
  defaults?: (obj: any) => void;
  /** Semantic checks beyond the .proto rules; `old` is set on update. */
  validate?: (obj: any, old: any | undefined) => Violation[];
  /** The semantic checks of the status alone (UpdateStatus changes nothing else). */
  validateStatus?: (obj: any) => Violation[];
  /**
   * RPCs of the kind's service beyond the generic ones, as authorization sees them (by the RPC's
   * local name): ServiceAccountService.CreateToken is `create` on `serviceaccounts/token`,
   * PodService.Log `get` on `pods/log`.
   */
  subresourceRpcs?: Record<string, { verb: Verb; subresource: string }>;
  /** Policy on create and update (Pod Security), after validation. */
  admit?: AdmitHook;
  /** How a delete marks an object that stays stored for a while (Kubernetes' graceful deletion). */
  deletion?: DeleteStrategy;
  /** A client may set the status on create (a Node's agent registers its capacity with it). */
  statusOnCreate?: boolean;
  /** The namespace authorization sees for an object named `name` (a Namespace is its own). */
  authorizationNamespace?: (name: string, namespace: string) => string;
}

/**
 * Per-kind deletion (Kubernetes' per-resource strategy). Kinds without one are removed at once,
 * unless finalizers hold them.
 */
export interface DeleteStrategy {
  /**
   * Marks `obj` (the copy about to be stored) as being deleted; `grace` is the request's grace
   * period. False: this object takes the generic path.
   */
  mark(obj: any, grace: bigint | undefined): boolean;
  /** A marked object with no finalizers left that must still stay (a pod its agent has not stopped). */
  waits(obj: any): boolean;
  /** Delete only marks: the apiserver removes the object later (a Namespace, once it is empty). */
  removedLater?: boolean;
}

/** A pod bound to a node is stopped by its agent, which then confirms with grace period 0. */
const podDeletion: DeleteStrategy = {
  mark(pod, grace) {
    if (pod.spec.nodeName === "") return false;
    const m = pod.metadata;
    const g = grace ?? m.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30n;
    if (m.deletionGracePeriodSeconds === undefined || g < m.deletionGracePeriodSeconds) {
      m.deletionGracePeriodSeconds = g;
      m.deletionTimestamp = timestampFromDate(new Date(Date.now() + Number(g) * 1000));
    }
    return true;
  },
  waits: (pod) => pod.spec?.nodeName !== "" && pod.metadata?.deletionGracePeriodSeconds !== 0n,
};

/** A namespace turns Terminating; the apiserver deletes its contents, then it. */
const namespaceDeletion: DeleteStrategy = {
  mark(ns) {
    ns.metadata.deletionTimestamp ??= timestampNow();
    ns.status.phase = "Terminating";
    return true;
  },
  waits: () => false,
  removedLater: true,
};

type KindInit = Omit<Kind, "fields" | "defaults" | "validate" | "validateStatus" | "admit" | "singular" | "shortNames"> & {
  shortNames?: string[];
  fields?: Record<string, FieldGetter>;
};

function kind(k: KindInit): Kind {
  return {
    ...k,
    singular: k.kind.toLowerCase(),
    shortNames: k.shortNames ?? [],
    fields: k.fields ?? {},
    defaults: kindDefaults[k.kind] ?? rbacDefaults[k.kind],
    validate: kindValidators[k.kind] ?? rbacValidators[k.kind],
    validateStatus: statusValidators[k.kind],
    admit: admissionHooks[k.kind],
  };
}

export const kinds: readonly Kind[] = [
  kind({
    kind: "Namespace", plural: "namespaces", shortNames: ["ns"], apiVersion: "v1", namespaced: false,
    hasStatus: true, schema: NamespaceSchema, service: NamespaceService, field: "namespace",
    fields: { "status.phase": (o) => o.status?.phase },
    deletion: namespaceDeletion,
    // A named Namespace is its own namespace (RoleBindings in it apply), as in Kubernetes.
    authorizationNamespace: (name) => name,
  }),
  kind({
    kind: "Node", plural: "nodes", shortNames: ["no"], apiVersion: "v1", namespaced: false, hasStatus: true,
    schema: NodeSchema, service: NodeService, field: "node", statusOnCreate: true,
    fields: { "spec.unschedulable": (o) => String(o.spec?.unschedulable ?? false) },
  }),
  kind({
    kind: "Pod", plural: "pods", shortNames: ["po"], apiVersion: "v1", namespaced: true, hasStatus: true,
    schema: PodSchema, service: PodService, field: "pod", watchIndex: "spec.nodeName",
    subresourceRpcs: { log: { verb: "get", subresource: "log" } },
    deletion: podDeletion,
    fields: {
      "spec.nodeName": (o) => o.spec?.nodeName ?? "",
      "spec.restartPolicy": (o) => o.spec?.restartPolicy ?? "",
      "spec.schedulerName": (o) => o.spec?.schedulerName ?? "",
      "status.phase": (o) => o.status?.phase ?? "",
      "status.podIP": (o) => o.status?.podIp ?? "",
    },
  }),
  kind({
    kind: "ReplicaSet", plural: "replicasets", shortNames: ["rs"], apiVersion: "apps/v1", namespaced: true,
    hasStatus: true, schema: ReplicaSetSchema, service: ReplicaSetService, field: "replicaSet",
  }),
  kind({
    kind: "Deployment", plural: "deployments", shortNames: ["deploy"], apiVersion: "apps/v1", namespaced: true,
    hasStatus: true, schema: DeploymentSchema, service: DeploymentService, field: "deployment",
  }),
  kind({
    kind: "Service", plural: "services", shortNames: ["svc"], apiVersion: "v1", namespaced: true, hasStatus: true,
    schema: ServiceSchema, service: ServiceService, field: "service",
    fields: { "spec.type": (o) => o.spec?.type ?? "", "spec.clusterIP": (o) => o.spec?.clusterIp ?? "" },
  }),
  kind({
    kind: "Endpoints", plural: "endpoints", shortNames: ["ep"], apiVersion: "v1", namespaced: true, hasStatus: false,
    schema: EndpointsSchema, service: EndpointsService, field: "endpoints",
  }),
  kind({
    kind: "ConfigMap", plural: "configmaps", shortNames: ["cm"], apiVersion: "v1", namespaced: true, hasStatus: false,
    schema: ConfigMapSchema, service: ConfigMapService, field: "configMap",
  }),
  kind({
    kind: "Secret", plural: "secrets", apiVersion: "v1", namespaced: true, hasStatus: false,
    schema: SecretSchema, service: SecretService, field: "secret",
    fields: { type: (o) => o.type ?? "" },
  }),
  kind({
    kind: "PersistentVolume", plural: "persistentvolumes", shortNames: ["pv"], apiVersion: "v1", namespaced: false,
    hasStatus: true, schema: PersistentVolumeSchema, service: PersistentVolumeService, field: "persistentVolume",
    // The node a volume is pinned to: agents watch their local-path volumes by it.
    fields: { "status.phase": (o) => o.status?.phase ?? "", [PINNED_NODE_FIELD]: (o) => pinnedNode(o) },
  }),
  kind({
    kind: "StorageClass", plural: "storageclasses", shortNames: ["sc"], apiVersion: "storage.k8s.io/v1", namespaced: false,
    hasStatus: false, schema: StorageClassSchema, service: StorageClassService, field: "storageClass",
  }),
  kind({
    kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", shortNames: ["pvc"], apiVersion: "v1",
    namespaced: true, hasStatus: true, schema: PersistentVolumeClaimSchema, service: PersistentVolumeClaimService,
    field: "persistentVolumeClaim", fields: { "status.phase": (o) => o.status?.phase ?? "" },
  }),
  kind({
    kind: "Lease", plural: "leases", apiVersion: "coordination.k8s.io/v1", namespaced: true, hasStatus: false,
    schema: LeaseSchema, service: LeaseService, field: "lease",
  }),
  kind({
    kind: "ServiceAccount", plural: "serviceaccounts", shortNames: ["sa"], apiVersion: "v1", namespaced: true,
    hasStatus: false, schema: ServiceAccountSchema, service: ServiceAccountService, field: "serviceAccount",
    subresourceRpcs: { createToken: { verb: "create", subresource: "token" } },
  }),
  kind({
    kind: "Event", plural: "events", shortNames: ["ev"], apiVersion: "v1", namespaced: true, hasStatus: false,
    schema: EventSchema, service: EventService, field: "event",
    fields: {
      "involvedObject.kind": (o) => o.involvedObject?.kind ?? "",
      "involvedObject.name": (o) => o.involvedObject?.name ?? "",
      "involvedObject.namespace": (o) => o.involvedObject?.namespace ?? "",
      "involvedObject.uid": (o) => o.involvedObject?.uid ?? "",
      reason: (o) => o.reason ?? "",
      type: (o) => o.type ?? "",
    },
  }),
  kind({
    kind: "Role", plural: "roles", apiVersion: "rbac.authorization.k8s.io/v1", namespaced: true, hasStatus: false,
    schema: RoleSchema, service: RoleService, field: "role",
  }),
  kind({
    kind: "ClusterRole", plural: "clusterroles", apiVersion: "rbac.authorization.k8s.io/v1", namespaced: false, hasStatus: false,
    schema: ClusterRoleSchema, service: ClusterRoleService, field: "clusterRole",
  }),
  kind({
    kind: "RoleBinding", plural: "rolebindings", apiVersion: "rbac.authorization.k8s.io/v1", namespaced: true, hasStatus: false,
    schema: RoleBindingSchema, service: RoleBindingService, field: "roleBinding",
  }),
  kind({
    kind: "ClusterRoleBinding", plural: "clusterrolebindings", apiVersion: "rbac.authorization.k8s.io/v1", namespaced: false,
    hasStatus: false, schema: ClusterRoleBindingSchema, service: ClusterRoleBindingService, field: "clusterRoleBinding",
  }),
];

const byName = new Map<string, Kind>();
for (const k of kinds) {
  for (const n of [k.kind.toLowerCase(), k.plural, k.singular, ...k.shortNames]) byName.set(n, k);
}

/** Finds a kind by any name a user may type: "Pod", "pods", "po", "deploy". */
export function lookupKind(name: string): Kind | undefined {
  return byName.get(name.toLowerCase());
}

/** Finds a kind by its exact Kind name ("ReplicaSet"). */
export function kindByName(kindName: string): Kind | undefined {
  return kinds.find((k) => k.kind === kindName);
}

/** Finds the kind whose message schema this is. */
export function kindForSchema(schema: DescMessage): Kind | undefined {
  return kinds.find((k) => k.schema.typeName === schema.typeName);
}

/** Reads a field for a field selector; metadata.name and metadata.namespace work on every kind. */
export function getField(k: Kind, obj: ApiObject, field: string): string | undefined {
  if (field === "metadata.name") return obj.metadata?.name ?? "";
  if (field === "metadata.namespace") return obj.metadata?.namespace ?? "";
  const get = k.fields[field];
  return get ? get(obj) : undefined;
}

/** The field selectors a kind supports, for error messages. */
export function selectableFields(k: Kind): string[] {
  return ["metadata.name", "metadata.namespace", ...Object.keys(k.fields)];
}
