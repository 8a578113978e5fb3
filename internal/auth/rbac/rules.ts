// How one RBAC rule matches one request, with Kubernetes' semantics: "*" matches every verb,
// group or resource; "pods" does not match "pods/status" but "*/status" and "*" do; a rule with
// resourceNames matches only requests that name one of them (so never list, watch or create);
// a non-resource URL matches exactly or, ending in "*", as a prefix.
import type { PolicyRule } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import type { RequestAttributes } from "../types.ts";

const ALL = "*";

function verbMatches(rule: PolicyRule, verb: string): boolean {
  return rule.verbs.includes(ALL) || rule.verbs.includes(verb);
}

function groupMatches(rule: PolicyRule, group: string): boolean {
  return rule.apiGroups.includes(ALL) || rule.apiGroups.includes(group);
}

function resourceMatches(rule: PolicyRule, resource: string, subresource: string): boolean {
  const combined = subresource === "" ? resource : `${resource}/${subresource}`;
  for (const r of rule.resources) {
    if (r === ALL || r === combined) return true;
    if (subresource !== "" && r === `*/${subresource}`) return true;
  }
  return false;
}

function nameMatches(rule: PolicyRule, name: string): boolean {
  return rule.resourceNames.length === 0 || (name !== "" && rule.resourceNames.includes(name));
}

function urlMatches(rule: PolicyRule, path: string): boolean {
  for (const u of rule.nonResourceUrls) {
    if (u === ALL || u === path) return true;
    if (u.endsWith(ALL) && path.startsWith(u.slice(0, -1))) return true;
  }
  return false;
}

/** Whether `rule` allows the request. */
export function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  if (!verbMatches(rule, a.verb)) return false;
  if (a.path !== undefined) return urlMatches(rule, a.path);
  return groupMatches(rule, a.apiGroup) && resourceMatches(rule, a.resource, a.subresource) && nameMatches(rule, a.name);
}

/**
 * Kubernetes' words for a refusal: `User "jane" cannot list resource "pods" in API group "" in
 * the namespace "team-a"`, `… at the cluster scope`, `User "x" cannot get path "/metrics"`.
 */
export function forbiddenReason(a: RequestAttributes): string {
  const who = `User "${a.user.name}"`;
  if (a.path !== undefined) return `${who} cannot ${a.verb} path "${a.path}"`;
  const resource = a.subresource === "" ? a.resource : `${a.resource}/${a.subresource}`;
  const where = a.namespace === "" ? "at the cluster scope" : `in the namespace "${a.namespace}"`;
  return `${who} cannot ${a.verb} resource "${resource}" in API group "${a.apiGroup}" ${where}`;
}

/**
 * The whole message of a PERMISSION_DENIED, as Kubernetes prints it:
 * `pods "web" is forbidden: User "jane" cannot get resource "pods" in API group "" in the namespace "a"`.
 */
export function forbiddenMessage(a: RequestAttributes, reason = forbiddenReason(a)): string {
  if (a.path !== undefined) return `forbidden: ${reason}`;
  const resource = a.subresource === "" ? a.resource : `${a.resource}/${a.subresource}`;
  return `${resource}${a.name === "" ? "" : ` "${a.name}"`} is forbidden: ${reason}`;
}
