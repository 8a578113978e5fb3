// The RBAC kinds' defaults and semantic validation (rbac.authorization.k8s.io/v1): what a rule,
// a subject and a roleRef may say, and that a binding's roleRef never changes.
import type { PolicyRule, RoleRef, Subject } from "../../gen/skiff/v1alpha1/rbac_pb.js";
import { validateMeta, type Violation } from "./validation.ts";

export const RBAC_GROUP = "rbac.authorization.k8s.io";

/** The verbs a rule may name ("*" = all of them). Anything else would silently grant nothing. */
export const KNOWN_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "impersonate", "bind", "escalate"];

/** Role and binding names are path segments in Kubernetes ("system:node" is a valid name). */
export function validatePathSegmentName(name: string): string[] {
  if (name === "." || name === "..") return [`may not be "${name}"`];
  if (/[/%]/.test(name)) return ['may not contain "/" or "%"'];
  if (name.length > 253) return ["must be no more than 253 characters"];
  return [];
}

function validateRules(rules: PolicyRule[], namespaced: boolean): Violation[] {
  const out: Violation[] = [];
  rules.forEach((r, i) => {
    const at = `rules[${i}]`;
    if (r.verbs.length === 0) out.push({ field: `${at}.verbs`, message: "required: at least one verb" });
    r.verbs.forEach((v, j) => {
      if (v !== "*" && !KNOWN_VERBS.includes(v)) out.push({ field: `${at}.verbs[${j}]`, message: `unknown verb "${v}": use one of ${KNOWN_VERBS.join(", ")} or "*"` });
    });
    const hasResources = r.resources.length > 0;
    const hasUrls = r.nonResourceUrls.length > 0;
    if (!hasResources && !hasUrls) out.push({ field: at, message: "set resources (with apiGroups) or, in a ClusterRole, nonResourceURLs" });
    if (hasUrls && namespaced) out.push({ field: `${at}.nonResourceURLs`, message: "only a ClusterRole may name non-resource URLs" });
    if (hasUrls && hasResources) out.push({ field: at, message: "a rule applies to resources or to non-resource URLs, not both: split it in two" });
    if (hasUrls && r.resourceNames.length > 0) out.push({ field: `${at}.resourceNames`, message: "may not be set with nonResourceURLs" });
    if (hasResources && r.apiGroups.length === 0) out.push({ field: `${at}.apiGroups`, message: 'required with resources: "" is the core group, "*" every group' });
    r.resources.forEach((res, j) => {
      if (res === "") out.push({ field: `${at}.resources[${j}]`, message: "may not be empty" });
    });
    r.nonResourceUrls.forEach((u, j) => {
      if (!u.startsWith("/") && u !== "*") out.push({ field: `${at}.nonResourceURLs[${j}]`, message: `"${u}" must start with "/" (or be "*")` });
    });
  });
  return out;
}

function validateRoleRef(ref: RoleRef | undefined, clusterBinding: boolean): Violation[] {
  if (!ref) return [{ field: "roleRef", message: "required" }];
  const out: Violation[] = [];
  if (ref.apiGroup !== RBAC_GROUP) out.push({ field: "roleRef.apiGroup", message: `must be "${RBAC_GROUP}"` });
  const kinds = clusterBinding ? ["ClusterRole"] : ["Role", "ClusterRole"];
  if (!kinds.includes(ref.kind)) out.push({ field: "roleRef.kind", message: `must be ${kinds.join(" or ")}, got "${ref.kind}"` });
  if (ref.name === "") out.push({ field: "roleRef.name", message: "required" });
  else out.push(...validatePathSegmentName(ref.name).map((message) => ({ field: "roleRef.name", message })));
  return out;
}

function validateSubjects(subjects: Subject[], clusterBinding: boolean): Violation[] {
  const out: Violation[] = [];
  subjects.forEach((s, i) => {
    const at = `subjects[${i}]`;
    if (s.name === "") out.push({ field: `${at}.name`, message: "required" });
    switch (s.kind) {
      case "User":
      case "Group":
        if (s.apiGroup !== RBAC_GROUP) out.push({ field: `${at}.apiGroup`, message: `must be "${RBAC_GROUP}" for a ${s.kind}` });
        break;
      case "ServiceAccount":
        if (s.apiGroup !== "") out.push({ field: `${at}.apiGroup`, message: 'must be "" for a ServiceAccount' });
        if (s.namespace === "" && clusterBinding) out.push({ field: `${at}.namespace`, message: "required for a ServiceAccount" });
        break;
      default:
        out.push({ field: `${at}.kind`, message: `must be User, Group or ServiceAccount, got "${s.kind}"` });
    }
  });
  return out;
}

function bindingValidator(clusterBinding: boolean) {
  return (b: any, old: any | undefined): Violation[] => {
    const out = [...validateMeta(b.metadata, !clusterBinding, validatePathSegmentName), ...validateRoleRef(b.roleRef, clusterBinding), ...validateSubjects(b.subjects, clusterBinding)];
    const was = old?.roleRef as RoleRef | undefined;
    const now = b.roleRef as RoleRef | undefined;
    if (was && (was.apiGroup !== now?.apiGroup || was.kind !== now?.kind || was.name !== now?.name)) {
      out.push({ field: "roleRef", message: `field is immutable (is ${was.kind} "${was.name}"): delete the binding and create it again to grant another role` });
    }
    return out;
  };
}

export const rbacValidators: Record<string, (obj: any, old: any | undefined) => Violation[]> = {
  Role: (r) => [...validateMeta(r.metadata, true, validatePathSegmentName), ...validateRules(r.rules, true)],
  ClusterRole: (r) => {
    const out = [...validateMeta(r.metadata, false, validatePathSegmentName), ...validateRules(r.rules, false)];
    if (r.aggregationRule) out.push({ field: "aggregationRule", message: "not supported: list the rules in the ClusterRole itself" });
    return out;
  },
  RoleBinding: bindingValidator(false),
  ClusterRoleBinding: bindingValidator(true),
};

function defaultBinding(b: { subjects: Subject[]; roleRef?: RoleRef; metadata?: { namespace: string } }): void {
  if (b.roleRef && b.roleRef.apiGroup === "") b.roleRef.apiGroup = RBAC_GROUP;
  for (const s of b.subjects) {
    if ((s.kind === "User" || s.kind === "Group") && s.apiGroup === "") s.apiGroup = RBAC_GROUP;
    // A RoleBinding's ServiceAccount without a namespace is in the binding's namespace.
    if (s.kind === "ServiceAccount" && s.namespace === "" && b.metadata?.namespace) s.namespace = b.metadata.namespace;
  }
}

export const rbacDefaults: Record<string, (obj: any) => void> = {
  RoleBinding: defaultBinding,
  ClusterRoleBinding: defaultBinding,
};
