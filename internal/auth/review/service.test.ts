// AuthorizationService's answers and refusals for requests a CLI would never send: each bad
// input is INVALID_ARGUMENT naming the field, a missing caller is UNAUTHENTICATED.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NonResourceAttributesSchema, ResourceAttributesSchema } from "../../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { userKey, type Authorizer, type UserInfo } from "../types.ts";
import { createAuthorizationService } from "./service.ts";

// An authorizer that allows exactly what it is told, to see the service pass requests through.
const allowGetPods: Authorizer = {
  authorize: (a) => (a.verb === "get" && a.resource === "pods" ? { decision: "allow", reason: "test: get pods" } : { decision: "no-opinion", reason: `no ${a.verb} ${a.resource}` }),
};
const svc = createAuthorizationService(allowGetPods) as Record<string, (req: unknown, ctx: unknown) => any>;
const as = (u: UserInfo | undefined) => ({ values: createContextValues().set(userKey, u) });
const jane = { name: "jane", groups: ["system:authenticated"] };
const res = (init: object) => create(ResourceAttributesSchema, init);

function code(f: () => unknown): [Code, string] {
  try {
    f();
  } catch (e) {
    return [(e as ConnectError).code, (e as ConnectError).rawMessage];
  }
  throw new Error("no error");
}

describe("AuthorizationService", () => {
  it("answers a self review with the authorizer's decision and reason", () => {
    expect(svc.createSelfSubjectAccessReview({ resourceAttributes: res({ verb: "get", resource: "pods", namespace: "a" }) }, as(jane))).toEqual({
      status: { allowed: true, denied: false, reason: "test: get pods" },
    });
    expect(svc.createSelfSubjectAccessReview({ resourceAttributes: res({ verb: "list", resource: "pods" }) }, as(jane)).status).toEqual({
      allowed: false,
      denied: false,
      reason: "no list pods",
    });
  });

  it("refuses malformed reviews naming the field, and callers without credentials", () => {
    const self = (req: object) => () => svc.createSelfSubjectAccessReview(req, as(jane));
    expect(code(self({}))).toEqual([Code.InvalidArgument, "access review is invalid: resourceAttributes: set exactly one of resourceAttributes and nonResourceAttributes"]);
    expect(code(self({ resourceAttributes: res({ verb: "get", resource: "pods" }), nonResourceAttributes: create(NonResourceAttributesSchema, { verb: "get", path: "/x" }) }))[0]).toBe(
      Code.InvalidArgument,
    );
    expect(code(self({ resourceAttributes: res({ verb: "read", resource: "pods" }) }))[1]).toMatch(/^access review is invalid: resourceAttributes.verb: unknown verb "read"/);
    expect(code(self({ resourceAttributes: res({ verb: "get" }) }))[1]).toMatch(/resourceAttributes.resource: required/);
    expect(code(self({ nonResourceAttributes: create(NonResourceAttributesSchema, { verb: "get", path: "metrics" }) }))[1]).toMatch(/nonResourceAttributes.path: must start with "\/"/);
    expect(code(() => svc.whoAmI({}, as(undefined)))).toEqual([Code.Unauthenticated, "no credentials: present a client certificate or a bearer token"]);
  });
});
