// The default policy (Kubernetes' bootstrap policy, trimmed to what Skiff serves): the user-facing
// ClusterRoles cluster-admin, admin, edit and view, and one ClusterRole per component with the
// least that component's code calls (read from internal/scheduler, internal/controller/* and
// internal/agent), bound to the component's user. Created and reconciled at apiserver start.
import { create } from "@bufbuild/protobuf";
import { ClusterRoleBindingSchema, ClusterRoleSchema, PolicyRuleSchema, type ClusterRole, type ClusterRoleBinding, type PolicyRule } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import { RBAC_GROUP } from "../../api/rbac.ts";
import { kinds } from "../../api/registry.ts";

const READ = ["get", "list", "watch"];
const WRITE = ["create", "update", "patch", "delete", "deletecollection"];

function rule(verbs: string[], apiGroups: string[], resources: string[], resourceNames: string[] = []): PolicyRule {
  return create(PolicyRuleSchema, { verbs, apiGroups, resources, resourceNames });
}

/** "apps/v1" → "apps"; "v1" → "" (the core group). */
export function groupOf(apiVersion: string): string {
  return apiVersion.includes("/") ? apiVersion.slice(0, apiVersion.indexOf("/")) : "";
}

/** Every kind of the registry as resources grouped by API group: new kinds are covered as they come. */
function registryRules(verbs: string[]): PolicyRule[] {
  const byGroup = new Map<string, string[]>();
  for (const k of kinds) {
    const g = groupOf(k.apiVersion);
    byGroup.set(g, [...(byGroup.get(g) ?? []), k.plural]);
  }
  return [...byGroup].map(([g, resources]) => rule(verbs, [g], resources));
}

// What people work with inside a namespace (Kubernetes' view/edit sets, for the kinds that exist
// here and a few announced ones: serviceaccounts, pods/exec).
const workloadsCore = ["pods", "services", "endpoints", "configmaps", "persistentvolumeclaims", "serviceaccounts"];
const workloadsApps = ["deployments", "replicasets", "deployments/scale", "replicasets/scale"];
const viewRules = (): PolicyRule[] => [
  rule(READ, [""], [...workloadsCore, "pods/log", "pods/status", "services/status", "persistentvolumeclaims/status", "events", "namespaces", "namespaces/status"]),
  rule(READ, ["apps"], [...workloadsApps, "deployments/status", "replicasets/status"]),
  rule(READ, ["coordination.k8s.io"], ["leases"]),
];
const editRules = (): PolicyRule[] => [
  ...viewRules(),
  rule([...READ, ...WRITE], [""], [...workloadsCore, "secrets", "pods/exec", "pods/attach", "pods/portforward"]),
  rule(WRITE, ["apps"], workloadsApps),
  rule(WRITE, ["coordination.k8s.io"], ["leases"]),
  rule(["impersonate"], [""], ["serviceaccounts"]),
  rule(["create"], [""], ["serviceaccounts/token"]),
];
const adminRules = (): PolicyRule[] => [
  ...editRules(),
  rule([...READ, ...WRITE], [RBAC_GROUP], ["roles", "rolebindings"]),
  rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
];

/** The leases the components elect leaders with (their default --lease-name, in skiff-system). */
export const SCHEDULER_LEASE = "skiff-scheduler";
export const CONTROLLER_MANAGER_LEASE = "skiff-controller-manager";

const leaderElection = (lease: string): PolicyRule[] => [
  rule(["create"], ["coordination.k8s.io"], ["leases"]),
  rule(["get", "update"], ["coordination.k8s.io"], ["leases"], [lease]),
];

const eventWriter = (): PolicyRule => rule(["create", "update", "patch"], [""], ["events"]);

// Components ask the apiserver whether a caller may read their /metrics (internal/metrics/access.ts).
const accessReviewer = (): PolicyRule => rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]);

// internal/scheduler: pod and node informers, Bind, the PodScheduled condition (UpdateStatus),
// Scheduled/FailedScheduling events, leader election.
// Volume binding: claims, volumes and classes read; the selected-node annotation on claims.
const schedulerRules = (): PolicyRule[] => [
  rule(READ, [""], ["pods", "nodes", "persistentvolumeclaims", "persistentvolumes"]),
  rule(READ, ["storage.k8s.io"], ["storageclasses"]),
  rule(["update"], [""], ["persistentvolumeclaims"]),
  rule(["create"], [""], ["pods/binding"]),
  rule(["update"], [""], ["pods/status"]),
  // Where every apiserver is (its client moves to another when one dies: internal/client/failover.ts).
  rule(["get"], [""], ["endpoints"], ["kubernetes"]),
  eventWriter(),
  accessReviewer(),
  ...leaderElection(SCHEDULER_LEASE),
];

// internal/controller/*: the garbage collector watches every kind and updates (owner references,
// finalizers) or deletes any object; replicaset creates pods, deployment creates replicasets,
// persistentvolume provisions PVs, writes PV and PVC statuses and makes the local-path class,
// endpoints creates Endpoints, serviceaccount a "default" ServiceAccount per namespace; statuses
// of replicasets, deployments, nodes and pods (node lifecycle); events; leader election. No
// subresource beyond status (no logs, no binding, no tokens).
const controllerManagerRules = (): PolicyRule[] => [
  ...registryRules(["get", "list", "watch", "update", "delete"]),
  rule(["create"], [""], ["pods", "endpoints", "serviceaccounts", "persistentvolumes"]),
  rule(["update"], [""], ["pods/status", "nodes/status", "persistentvolumes/status", "persistentvolumeclaims/status"]),
  rule(["create"], ["storage.k8s.io"], ["storageclasses"]),
  rule(["create"], ["apps"], ["replicasets"]),
  rule(["update"], ["apps"], ["replicasets/status", "deployments/status"]),
  eventWriter(),
  accessReviewer(),
  ...leaderElection(CONTROLLER_MANAGER_LEASE),
];

// internal/agent, for what is not tied to one node's objects (the node authorizer grants those:
// its Node, its Lease, its pods, the Secrets/ConfigMaps/PVCs they use): every Node (pod routes),
// Services and Endpoints (service proxy, DNS, service environment variables), events.
const nodeRules = (): PolicyRule[] => [
  rule(READ, [""], ["nodes", "services", "endpoints"]),
  rule(["get"], [""], ["namespaces"]),
  eventWriter(),
  accessReviewer(),
];

// Joining (internal/join): a bootstrapper of role agent may ask for its first node certificates,
// and nothing else; a node may renew its own (NodeIdentityService, certificates.k8s.io).
export const NODE_BOOTSTRAPPER_ROLE = "system:node-bootstrapper";
export const SELF_NODE_CLIENT_ROLE = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";
export const AGENT_BOOTSTRAPPERS_GROUP = "system:bootstrappers:agent";
// A bootstrapper of role server may join the control plane (ServerService.JoinServer), nothing else.
export const SERVER_BOOTSTRAPPER_ROLE = "system:server-bootstrapper";
export const SERVER_BOOTSTRAPPERS_GROUP = "system:bootstrappers:server";

// Every authenticated user may ask what they may do and who they are.
const basicUserRules = (): PolicyRule[] => [
  rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
  rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
];

export const BOOTSTRAP_LABELS = { "kubernetes.io/bootstrapping": "rbac-defaults" };
/** Set to "false" on a default object to keep the apiserver from adding the defaults back. */
export const AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate";

function clusterRole(name: string, rules: PolicyRule[], nonResourceUrls?: string[]): ClusterRole {
  const all = nonResourceUrls ? [...rules, create(PolicyRuleSchema, { verbs: ["*"], nonResourceUrls })] : rules;
  return create(ClusterRoleSchema, { metadata: { name, labels: BOOTSTRAP_LABELS, annotations: { [AUTOUPDATE_ANNOTATION]: "true" } }, rules: all });
}

function binding(name: string, role: string, subjects: { kind: "User" | "Group"; name: string }[]): ClusterRoleBinding {
  return create(ClusterRoleBindingSchema, {
    metadata: { name, labels: BOOTSTRAP_LABELS, annotations: { [AUTOUPDATE_ANNOTATION]: "true" } },
    roleRef: { apiGroup: RBAC_GROUP, kind: "ClusterRole", name: role },
    subjects: subjects.map((s) => ({ ...s, apiGroup: RBAC_GROUP })),
  });
}

export const SCHEDULER_USER = "system:kube-scheduler";
export const CONTROLLER_MANAGER_USER = "system:kube-controller-manager";
export const NODES_GROUP = "system:nodes";
export const AUTHENTICATED_GROUP = "system:authenticated";
export const MASTERS_GROUP = "system:masters";
/** Kubernetes' group for scrapers: `get` on every component's /metrics and health paths. */
export const MONITORING_GROUP = "system:monitoring";
const MONITORING_PATHS = ["/metrics", "/metrics/*", "/healthz", "/healthz/*", "/livez", "/livez/*", "/readyz", "/readyz/*"];

export function defaultClusterRoles(): ClusterRole[] {
  return [
    clusterRole("cluster-admin", [rule(["*"], ["*"], ["*"])], ["*"]),
    clusterRole("admin", adminRules()),
    clusterRole("edit", editRules()),
    clusterRole("view", viewRules()),
    clusterRole(SCHEDULER_USER, schedulerRules()),
    clusterRole(CONTROLLER_MANAGER_USER, controllerManagerRules()),
    clusterRole("system:node", nodeRules()),
    clusterRole("system:basic-user", basicUserRules()),
    clusterRole(NODE_BOOTSTRAPPER_ROLE, [rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/nodeclient"])]),
    clusterRole(SELF_NODE_CLIENT_ROLE, [rule(["create"], ["certificates.k8s.io"], ["certificatesigningrequests/selfnodeclient"])]),
    clusterRole(SERVER_BOOTSTRAPPER_ROLE, [rule(["create"], ["skiff.io"], ["servers/join"])]),
    clusterRole("system:monitoring", [create(PolicyRuleSchema, { verbs: ["get"], nonResourceUrls: MONITORING_PATHS })]),
  ];
}

export function defaultClusterRoleBindings(): ClusterRoleBinding[] {
  return [
    binding("cluster-admin", "cluster-admin", [{ kind: "Group", name: MASTERS_GROUP }]),
    binding(SCHEDULER_USER, SCHEDULER_USER, [{ kind: "User", name: SCHEDULER_USER }]),
    binding(CONTROLLER_MANAGER_USER, CONTROLLER_MANAGER_USER, [{ kind: "User", name: CONTROLLER_MANAGER_USER }]),
    binding("system:node", "system:node", [{ kind: "Group", name: NODES_GROUP }]),
    binding("system:basic-user", "system:basic-user", [{ kind: "Group", name: AUTHENTICATED_GROUP }]),
    binding(NODE_BOOTSTRAPPER_ROLE, NODE_BOOTSTRAPPER_ROLE, [{ kind: "Group", name: AGENT_BOOTSTRAPPERS_GROUP }]),
    binding(SELF_NODE_CLIENT_ROLE, SELF_NODE_CLIENT_ROLE, [{ kind: "Group", name: NODES_GROUP }]),
    binding(SERVER_BOOTSTRAPPER_ROLE, SERVER_BOOTSTRAPPER_ROLE, [{ kind: "Group", name: SERVER_BOOTSTRAPPERS_GROUP }]),
    binding("system:monitoring", "system:monitoring", [{ kind: "Group", name: MONITORING_GROUP }]),
  ];
}
