// Escalation prevention (Kubernetes' RBAC storage rules): nobody grants through RBAC more than
// they hold. Writing a Role or ClusterRole needs every one of its rules to be covered by the
// writer's own rules in that scope, or the `escalate` verb on it; writing a binding needs the
// bound role's rules covered, or the `bind` verb on that role. Without this, anyone allowed to
// write roles or bindings (the `admin` role in a namespace) could grant themselves anything.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ClusterRole, PolicyRule, Role, RoleBinding } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import { RBAC_GROUP } from "../../api/rbac.ts";
import { keyFor } from "../../apiserver/objects.ts";
import type { ApiObject } from "../../api/registry.ts";
import type { UserInfo, Verb } from "../types.ts";
import type { RbacAuthorizer, RbacCaches } from "./authorizer.ts";

/** One verb on one resource (and name) of one group, or one verb on one URL. */
interface Atom {
  verb: string;
  group?: string;
  resource?: string;
  name?: string;
  url?: string;
}

function atoms(rule: PolicyRule): Atom[] {
  const out: Atom[] = [];
  for (const verb of rule.verbs) {
    for (const url of rule.nonResourceUrls) out.push({ verb, url });
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        if (rule.resourceNames.length === 0) out.push({ verb, group, resource });
        else for (const name of rule.resourceNames) out.push({ verb, group, resource, name });
      }
    }
  }
  return out;
}

// A requested "*" is covered only by an owned "*": wildcards are compared as values.
const has = (list: string[], v: string) => list.includes("*") || list.includes(v);

function covers(owner: PolicyRule, a: Atom): boolean {
  if (!has(owner.verbs, a.verb)) return false;
  if (a.url !== undefined) {
    return owner.nonResourceUrls.some((u) => u === "*" || u === a.url || (u.endsWith("*") && a.url!.startsWith(u.slice(0, -1))));
  }
  if (!has(owner.apiGroups, a.group!)) return false;
  const sub = a.resource!.includes("/") ? a.resource!.slice(a.resource!.indexOf("/") + 1) : undefined;
  const resourceOk = owner.resources.some((r) => r === "*" || r === a.resource || (sub !== undefined && r === `*/${sub}`));
  if (!resourceOk) return false;
  return owner.resourceNames.length === 0 || (a.name !== undefined && owner.resourceNames.includes(a.name));
}

/** The requested rules' parts that none of the owner's rules cover. */
export function uncovered(owner: PolicyRule[], requested: PolicyRule[]): Atom[] {
  return requested.flatMap(atoms).filter((a) => !owner.some((o) => covers(o, a)));
}

function describeAtoms(missing: Atom[]): string {
  const shown = missing.slice(0, 5).map((a) => (a.url !== undefined ? `${a.verb} ${a.url}` : `${a.verb} ${a.resource}${a.group ? `.${a.group}` : ""}${a.name ? ` "${a.name}"` : ""}`));
  return shown.join(", ") + (missing.length > 5 ? ` and ${missing.length - 5} more` : "");
}

export interface RbacWrite {
  user: UserInfo;
  /** "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"; anything else is not checked. */
  kind: string;
  /** The object as it will be stored (create, update). */
  object: ApiObject;
}

export interface EscalationCheck {
  /** Throws PERMISSION_DENIED when the write would grant what its writer does not hold. */
  admit(w: RbacWrite): void;
}

export function createEscalationCheck(rbac: RbacAuthorizer, caches: RbacCaches): EscalationCheck {
  const may = (user: UserInfo, verb: Verb, resource: string, namespace: string, name: string) =>
    rbac.authorize({ user, verb, apiGroup: RBAC_GROUP, resource, subresource: "", namespace, name }).decision === "allow";

  function refuse(w: RbacWrite, namespace: string, missing: Atom[], how: string): never {
    const where = namespace === "" ? "cluster-wide" : `in namespace "${namespace}"`;
    throw new ConnectError(
      `${w.kind.toLowerCase()} "${w.object.metadata?.name}" is forbidden: user "${w.user.name}" may not grant permissions it does not hold ${where}: ${describeAtoms(missing)} (${how})`,
      Code.PermissionDenied,
    );
  }

  function roleRules(kind: string, namespace: string, name: string): PolicyRule[] | undefined {
    const c = caches.get(kind);
    const obj = c?.get(keyFor(c.kind, kind === "Role" ? namespace : "", name)) as (Role | ClusterRole) | undefined;
    return obj?.rules;
  }

  const RBAC_WRITE_KINDS = new Set(["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]);
  return {
    admit(w) {
      // Only RBAC objects grant anything: every other write (a pod's status, a Lease) is done here.
      if (!RBAC_WRITE_KINDS.has(w.kind)) return;
      const ns = w.object.metadata?.namespace ?? "";
      const name = w.object.metadata?.name ?? "";
      const held = rbac.rulesFor(w.user, ns);
      if (held === undefined) return; // system:masters
      if (w.kind === "Role" || w.kind === "ClusterRole") {
        const plural = w.kind === "Role" ? "roles" : "clusterroles";
        if (may(w.user, "escalate", plural, ns, name)) return;
        const missing = uncovered(held, (w.object as unknown as Role).rules);
        if (missing.length > 0) refuse(w, ns, missing, `or needs the escalate verb on ${plural}`);
        return;
      }
      if (w.kind === "RoleBinding" || w.kind === "ClusterRoleBinding") {
        const ref = (w.object as unknown as RoleBinding).roleRef;
        if (!ref) return; // validation reports it
        const plural = ref.kind === "Role" ? "roles" : "clusterroles";
        // Asked in the binding's namespace: a RoleBinding may bind what `bind` there allows.
        if (may(w.user, "bind", plural, ns, ref.name)) return;
        const rules = roleRules(ref.kind, ns, ref.name);
        if (rules === undefined) {
          throw new ConnectError(`${w.kind.toLowerCase()} "${name}": ${ref.kind} "${ref.name}" not found: create the role before binding it`, Code.NotFound);
        }
        const missing = uncovered(held, rules);
        if (missing.length > 0) refuse(w, ns, missing, `or needs the bind verb on ${plural} "${ref.name}"`);
      }
    },
  };
}
