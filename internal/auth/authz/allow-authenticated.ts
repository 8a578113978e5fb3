// An authorizer that allows every authenticated user everything: for benchmarks and tests that
// measure or exercise the pipeline without a policy. The apiserver itself uses RBAC + the node
// authorizer (internal/auth/cluster.ts).
import type { Authorizer } from "../types.ts";

export function allowAuthenticated(): Authorizer {
  return { authorize: () => ({ decision: "allow", reason: "every authenticated user is allowed (no authorization mode configured)" }) };
}
