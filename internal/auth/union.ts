// Authorizers in a chain (node authorizer, then RBAC): the first that allows or denies decides;
// when none has an opinion the request is denied with the last one's reason (RBAC's
// Kubernetes-style "User … cannot …" text).
import type { Authorizer, Decision, PolicySource } from "./types.ts";

export type ChainedAuthorizer = Authorizer & Partial<PolicySource>;

export function union(...authorizers: ChainedAuthorizer[]): Authorizer & PolicySource {
  return {
    authorize(a): Decision {
      let last: Decision = { decision: "deny", reason: "no authorizer configured" };
      for (const z of authorizers) {
        const d = z.authorize(a);
        if (d.decision !== "no-opinion") return d;
        if (d.reason !== "") last = d;
      }
      return { decision: "deny", reason: last.reason };
    },
    onPolicyChange(listener) {
      const offs = authorizers.map((z) => z.onPolicyChange?.(listener));
      return () => offs.forEach((off) => off?.());
    },
  };
}
