// Authorizers in a chain (node authorizer, then RBAC): the first that allows or denies decides;
// when none has an opinion the request is denied with the last one's reason (RBAC's
// Kubernetes-style "User … cannot …" text), followed by what the others said ("…: no pod bound
// to node "n1" uses secrets a/db").
import type { Authorizer, Decision, PolicySource } from "./types.ts";

export type ChainedAuthorizer = Authorizer & Partial<PolicySource>;

export function union(...authorizers: ChainedAuthorizer[]): Authorizer & PolicySource {
  return {
    authorize(a): Decision {
      const reasons: string[] = [];
      for (const z of authorizers) {
        const d = z.authorize(a);
        if (d.decision !== "no-opinion") return d;
        if (d.reason !== "") reasons.push(d.reason);
      }
      const main = reasons.pop() ?? "no authorizer has an opinion";
      return { decision: "deny", reason: reasons.length > 0 ? `${main}: ${reasons.join("; ")}` : main };
    },
    onPolicyChange(listener) {
      const offs = authorizers.map((z) => z.onPolicyChange?.(listener));
      return () => offs.forEach((off) => off?.());
    },
  };
}
