// The placeholder authorizer: every authenticated user may do everything. Authentication has
// already refused everyone else; RBAC and the node authorizer replace this one.
import type { Authorizer } from "../types.ts";

export function allowAuthenticated(): Authorizer {
  return { authorize: () => ({ decision: "allow", reason: "every authenticated user is allowed (no authorization mode configured)" }) };
}
