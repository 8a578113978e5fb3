// AuthorizationService: access reviews and "who am I", answered by the same authorizer the
// request pipeline uses. The caller comes from the context (userKey), as authentication and
// impersonation left it.
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { NonResourceAttributes, ResourceAttributes } from "../../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { KNOWN_VERBS } from "../../api/rbac.ts";
import { invalid } from "../../apiserver/errors.ts";
import { forbiddenMessage } from "../rbac/rules.ts";
import { userKey, type Authorizer, type RequestAttributes, type UserInfo, type Verb } from "../types.ts";

/**
 * What each call is, as RBAC sees it (for the request pipeline, which authorizes calls by these
 * attributes before they reach the handlers): the default `system:basic-user` ClusterRole grants
 * the self reviews to every authenticated user.
 */
export const reviewAttributes: Record<string, Pick<RequestAttributes, "verb" | "apiGroup" | "resource">> = {
  CreateSelfSubjectAccessReview: { verb: "create", apiGroup: "authorization.k8s.io", resource: "selfsubjectaccessreviews" },
  CreateSubjectAccessReview: { verb: "create", apiGroup: "authorization.k8s.io", resource: "subjectaccessreviews" },
  WhoAmI: { verb: "create", apiGroup: "authentication.k8s.io", resource: "selfsubjectreviews" },
};

function caller(ctx: Partial<Pick<HandlerContext, "values">>): UserInfo {
  const user = ctx.values?.get(userKey);
  if (!user) throw new ConnectError("no credentials: present a client certificate or a bearer token", Code.Unauthenticated);
  return user;
}

/** The request under review, checked: bad input is INVALID_ARGUMENT naming the field. */
function reviewed(user: UserInfo, res: ResourceAttributes | undefined, non: NonResourceAttributes | undefined): RequestAttributes {
  if (!res === !non) throw invalid("access review", [{ field: "resourceAttributes", message: "set exactly one of resourceAttributes and nonResourceAttributes" }]);
  const verb = (res ?? non)!.verb;
  const field = res ? "resourceAttributes" : "nonResourceAttributes";
  if (verb !== "*" && !KNOWN_VERBS.includes(verb)) throw invalid("access review", [{ field: `${field}.verb`, message: `unknown verb "${verb}": use one of ${KNOWN_VERBS.join(", ")}` }]);
  if (non) {
    if (!non.path.startsWith("/")) throw invalid("access review", [{ field: "nonResourceAttributes.path", message: 'must start with "/"' }]);
    return { user, verb: verb as Verb, apiGroup: "", resource: "", subresource: "", namespace: "", name: "", path: non.path };
  }
  if (res!.resource === "") throw invalid("access review", [{ field: "resourceAttributes.resource", message: 'required: a plural resource such as "pods"' }]);
  return { user, verb: verb as Verb, apiGroup: res!.group, resource: res!.resource, subresource: res!.subresource, namespace: res!.namespace, name: res!.name };
}

function answer(authorizer: Authorizer, a: RequestAttributes) {
  const d = authorizer.authorize(a);
  return { status: { allowed: d.decision === "allow", denied: d.decision === "deny", reason: d.reason } };
}

export function createAuthorizationService(authorizer: Authorizer): Record<string, unknown> {
  return {
    createSelfSubjectAccessReview(req: { resourceAttributes?: ResourceAttributes; nonResourceAttributes?: NonResourceAttributes }, ctx: HandlerContext) {
      return answer(authorizer, reviewed(caller(ctx), req.resourceAttributes, req.nonResourceAttributes));
    },
    createSubjectAccessReview(
      req: { resourceAttributes?: ResourceAttributes; nonResourceAttributes?: NonResourceAttributes; user: string; groups: string[]; uid: string },
      ctx: HandlerContext,
    ) {
      const me = caller(ctx);
      // Checked here as well as in the pipeline: the answer tells what someone else may do.
      const mine: RequestAttributes = { user: me, ...reviewAttributes.CreateSubjectAccessReview, subresource: "", namespace: "", name: "" };
      const may = authorizer.authorize(mine);
      if (may.decision !== "allow") throw new ConnectError(forbiddenMessage(mine, may.reason), Code.PermissionDenied);
      if (req.user === "" && req.groups.length === 0) throw invalid("subject access review", [{ field: "user", message: "required: a user, groups, or both" }]);
      const subject: UserInfo = { name: req.user, groups: req.groups, uid: req.uid || undefined };
      return answer(authorizer, reviewed(subject, req.resourceAttributes, req.nonResourceAttributes));
    },
    whoAmI(_req: unknown, ctx: HandlerContext) {
      const u = caller(ctx);
      return { userInfo: { username: u.name, uid: u.uid ?? "", groups: u.groups, authenticatedBy: u.authenticatedBy ?? "" } };
    },
  };
}
