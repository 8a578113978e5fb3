// The one request pipeline every call goes through, whichever way it came in (Connect, gRPC and
// gRPC-Web through connect, or plain gRPC through the direct path):
//
//   begin(peer, headers)  — authenticate (client certificate | bearer token), then impersonate
//                           (impersonate-user / impersonate-group): called by connect's
//                           contextValues and by the direct path for each call
//   guard(kind, impl)     — wraps every handler of a kind: authorize the call (attributes built
//                           from the kind registry), put the user in the context, run the handler
//
// Handlers are only ever registered wrapped (server.ts registers guard(impl) with both paths),
// so no path can reach one without a caller and a decision.
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Kind } from "../api/registry.ts";
import type { Authenticator, Peer } from "../auth/authn/authenticator.ts";
import { AUTHENTICATED_GROUP } from "../auth/authn/authenticator.ts";
import { forbiddenMessage } from "../auth/rbac/rules.ts";
import { revocable, type AccessRevoker } from "../auth/revocation.ts";
import { userKey, type Authorizer, type RequestAttributes, type UserInfo, type Verb } from "../auth/types.ts";

/** The caller as begin() found it: the user, a pending token check, or why it was refused. */
type Caller = UserInfo | Promise<UserInfo> | ConnectError;
const callerKey = createContextKey<Caller | undefined>(undefined, { description: "the call's caller, before authorization" });

/** Request headers as either path has them. */
export type HeaderLookup = (name: string) => string | undefined;

/**
 * What each service method is, for authorization. A method missing here stops the apiserver at
 * start (so a new RPC cannot go unguarded): add its row.
 */
export const METHOD_ATTRIBUTES: Record<string, { verb: Verb; subresource: string; target: "name" | "object" | "namespace" }> = {
  get: { verb: "get", subresource: "", target: "name" },
  list: { verb: "list", subresource: "", target: "namespace" },
  watch: { verb: "watch", subresource: "", target: "namespace" },
  create: { verb: "create", subresource: "", target: "object" },
  update: { verb: "update", subresource: "", target: "object" },
  updateStatus: { verb: "update", subresource: "status", target: "object" },
  delete: { verb: "delete", subresource: "", target: "name" },
  bind: { verb: "create", subresource: "binding", target: "name" },
};

/** What a call is, for authorization, from its request (everything but the user). */
export type Target = (req: any) => Omit<RequestAttributes, "user">;

export interface RequestPipelineOptions {
  authenticator: Authenticator;
  authorizer: Authorizer;
  /** Ends open streams whose caller lost access (absent: streams are authorized once, at start). */
  revoker?: AccessRevoker;
  log?: Logger;
}

export interface RequestPipeline {
  /** Who is calling: the context values a call's handler receives. */
  begin(peer: Peer, header: HeaderLookup): ContextValues;
  /** A kind's handlers, each authorizing its call before it runs (attributes from the kind registry). */
  guard(kind: Kind, impl: Record<string, unknown>): Record<string, unknown>;
  /** Another service's handlers (access reviews, encryption), authorized by `targets`; a method without one stops the start. */
  guardService(service: DescService, impl: Record<string, unknown>, targets: Record<string, Target>): Record<string, unknown>;
  /** For plain HTTP endpoints (/metrics): the caller, if allowed `verb` on the non-resource path. */
  authorizePath(peer: Peer, header: HeaderLookup, verb: Verb, path: string): Promise<UserInfo>;
}

export function createRequestPipeline(opts: RequestPipelineOptions): RequestPipeline {
  const { authenticator, authorizer, revoker, log } = opts;

  function refused(err: ConnectError, detail: Record<string, unknown>): ConnectError {
    log?.warn({ code: Code[err.code], reason: err.rawMessage, ...detail }, "request refused");
    return err;
  }

  function identify(peer: Peer, header: HeaderLookup): UserInfo | Promise<UserInfo> {
    const real = authenticator.authenticate(peer, header("authorization"));
    const asUser = header("impersonate-user");
    const asGroups = header("impersonate-group");
    if (asUser === undefined && asGroups === undefined) return real;
    return real instanceof Promise ? real.then((u) => impersonate(u, asUser, asGroups)) : impersonate(real, asUser, asGroups);
  }

  function impersonate(real: UserInfo, asUser: string | undefined, asGroups: string | undefined): UserInfo {
    if (!asUser) throw new ConnectError("impersonate-group needs impersonate-user (skiffctl: --as-group needs --as)", Code.InvalidArgument);
    const groups = (asGroups ?? "").split(",").map((g) => g.trim()).filter(Boolean);
    const check = (resource: string, name: string) => {
      const d = authorizer.authorize({ user: real, verb: "impersonate", apiGroup: "", resource, subresource: "", namespace: "", name });
      if (d.decision !== "allow") throw new ConnectError(`user "${real.name}" cannot impersonate ${resource === "users" ? "user" : "group"} "${name}"${d.reason ? `: ${d.reason}` : ""}`, Code.PermissionDenied);
    };
    check("users", asUser);
    for (const g of groups) check("groups", g);
    return { name: asUser, groups: groups.includes(AUTHENTICATED_GROUP) ? groups : [...groups, AUTHENTICATED_GROUP], authenticatedBy: real.authenticatedBy };
  }

  function begin(peer: Peer, header: HeaderLookup): ContextValues {
    const values = createContextValues();
    let caller: Caller;
    try {
      caller = identify(peer, header);
      // A call that never reaches its handler (a malformed request) must not leave an unhandled rejection.
      if (caller instanceof Promise) caller.catch(() => {});
    } catch (err) {
      caller = ConnectError.from(err);
    }
    values.set(callerKey, caller);
    return values;
  }

  /** The kind registry's view of a kind's methods: generic rows, then the kind's own RPCs. */
  function kindTargets(kind: Kind, impl: Record<string, unknown>): Record<string, Target> {
    const apiGroup = kind.apiVersion.includes("/") ? kind.apiVersion.split("/")[0] : "";
    const out: Record<string, Target> = {};
    for (const method of Object.keys(impl)) {
      const a = METHOD_ATTRIBUTES[method] ?? (kind.subresourceRpcs?.[method] && { ...kind.subresourceRpcs[method], target: "name" as const });
      if (!a) throw new Error(`${kind.service.typeName}.${method}: no authorization attributes; add the method to METHOD_ATTRIBUTES (internal/apiserver/pipeline.ts) or to the kind's subresourceRpcs`);
      out[method] = (req: any) => {
        const obj = a.target === "object" ? req?.[kind.field]?.metadata : undefined;
        const name = a.target === "name" ? String(req?.name ?? "") : a.target === "object" && method !== "create" ? String(obj?.name ?? "") : "";
        const stored = kind.namespaced ? String((obj ? obj.namespace : req?.namespace) ?? "") : "";
        const namespace = kind.authorizationNamespace ? kind.authorizationNamespace(name, stored) : stored;
        const attrs: Omit<RequestAttributes, "user"> = { verb: a.verb, apiGroup, resource: kind.plural, subresource: a.subresource, namespace, name };
        // The node authorizer lets an agent list and watch only its own pods (spec.nodeName=<node>).
        if (a.target === "namespace") {
          if (req?.fieldSelector) attrs.fieldSelector = String(req.fieldSelector);
          if (req?.labelSelector) attrs.labelSelector = String(req.labelSelector);
        }
        return attrs;
      };
    }
    return out;
  }

  function guard(kind: Kind, impl: Record<string, unknown>): Record<string, unknown> {
    return guardService(kind.service, impl, kindTargets(kind, impl));
  }

  function guardService(desc: DescService, impl: Record<string, unknown>, targets: Record<string, Target>): Record<string, unknown> {
    const service = desc.typeName;
    // Server-streaming methods (Watch, Log, …) are authorized on their first read and end when access is revoked.
    const streaming = new Set(desc.methods.filter((m) => m.methodKind === "server_streaming").map((m) => m.localName));
    const out: Record<string, unknown> = {};
    for (const [method, handler] of Object.entries(impl)) {
      if (typeof handler !== "function") continue;
      const target = targets[method];
      if (!target) throw new Error(`${service}.${method}: no authorization attributes`);
      const authorize = (user: UserInfo, req: unknown, ctx: { values: ContextValues }): RequestAttributes => {
        const attrs: RequestAttributes = { user, ...target(req) };
        const d = authorizer.authorize(attrs);
        if (d.decision !== "allow") {
          const { verb, resource, subresource, namespace, name } = attrs;
          throw refused(new ConnectError(forbiddenMessage(attrs, d.reason || undefined), Code.PermissionDenied), { user: user.name, groups: user.groups, verb, resource, subresource, namespace, name });
        }
        ctx.values.set(userKey, user);
        return attrs;
      };
      /** The caller, authorized: the attributes when known now, else a promise of them. */
      const admit = (req: unknown, ctx: { values: ContextValues }): RequestAttributes | Promise<RequestAttributes> => {
        const caller = ctx.values.get(callerKey);
        const what = () => ({ service, method });
        if (caller === undefined) throw new ConnectError("internal error: the call did not pass authentication", Code.Internal);
        if (caller instanceof ConnectError) throw refused(caller, what());
        if (caller instanceof Promise) {
          return caller.then(
            (u) => authorize(u, req, ctx),
            (err) => {
              throw refused(ConnectError.from(err), what());
            },
          );
        }
        return authorize(caller, req, ctx);
      };
      const run = handler as (req: unknown, ctx: any) => any;
      if (streaming.has(method)) {
        // A stream ends (PERMISSION_DENIED) soon after its caller loses access.
        const wrap = (attrs: RequestAttributes, req: unknown, ctx: any) => (revoker ? revocable(revoker, attrs, run(req, ctx) as AsyncIterable<unknown>) : run(req, ctx));
        out[method] = (req: unknown, ctx: any) => guardedStream(() => admit(req, ctx), (attrs) => wrap(attrs, req, ctx));
      } else {
        out[method] = (req: unknown, ctx: any) => {
          let admitted: RequestAttributes | Promise<RequestAttributes>;
          try {
            admitted = admit(req, ctx);
          } catch (err) {
            return Promise.reject(err); // a refusal is a rejected call like any other failure, never a throw
          }
          return admitted instanceof Promise ? admitted.then(() => run(req, ctx)) : run(req, ctx);
        };
      }
    }
    return out;
  }

  async function authorizePath(peer: Peer, header: HeaderLookup, verb: Verb, path: string): Promise<UserInfo> {
    let user: UserInfo;
    try {
      user = await identify(peer, header);
    } catch (err) {
      throw refused(ConnectError.from(err), { verb, path });
    }
    const attrs: RequestAttributes = { user, verb, apiGroup: "", resource: "", subresource: "", namespace: "", name: "", path };
    const d = authorizer.authorize(attrs);
    if (d.decision !== "allow") {
      throw refused(new ConnectError(forbiddenMessage(attrs, d.reason || undefined), Code.PermissionDenied), { user: user.name, verb, path });
    }
    return user;
  }

  return { begin, guard, guardService, authorizePath };
}

/** A server stream that authorizes on its first read, then hands over to the handler's own iterator. */
function guardedStream(admit: () => RequestAttributes | Promise<RequestAttributes>, open: (attrs: RequestAttributes) => AsyncIterable<unknown>): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]() {
      let inner: AsyncIterator<unknown> | undefined;
      const start = async () => {
        inner = open(await admit())[Symbol.asyncIterator]();
        return inner.next();
      };
      return {
        next: () => (inner ? inner.next() : start()),
        return: (v?: unknown) => (inner?.return ? inner.return(v) : Promise.resolve({ done: true as const, value: v })),
      };
    },
  };
}
