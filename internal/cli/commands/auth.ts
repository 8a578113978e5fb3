// skiffctl auth can-i VERB RESOURCE [NAME] — asks the apiserver (an access review) whether the
// caller, or with --as another user, may do something: prints "yes" (exit 0) or "no" with the
// reason (exit 1), like kubectl. skiffctl auth whoami — the caller as the apiserver sees it.
import { createClient } from "@connectrpc/connect";
import { defineCommand } from "citty";
import { AuthorizationService } from "../../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { KNOWN_VERBS } from "../../api/rbac.ts";
import { lookupKind } from "../../api/registry.ts";
import { groupOf } from "../../auth/rbac/policy.ts";
import { connect, namespaceArgs, serverArg, type Session } from "../context.ts";
import { AlreadyReported, CliError } from "../errors.ts";
import { strictFlags } from "./flags.ts";

const USAGE = "skiffctl auth can-i VERB RESOURCE[/SUBRESOURCE] [NAME] [-n NS] [--as USER] [--as-group GROUP]";
const CALL_TIMEOUT_MS = 30_000;

export interface ReviewTarget {
  resource: string;
  group: string;
  subresource: string;
  /** Set when RESOURCE is not one the registry knows (the answer is still the authorizer's). */
  unknown: boolean;
  namespaced: boolean;
}

/**
 * "pods", "po", "pods/log", "deployments.apps", "leases.coordination.k8s.io", "*": the resource
 * and API group to review, found through the kind registry like every other command.
 */
export function parseReviewResource(text: string): ReviewTarget {
  const [typed, subresource = ""] = text.split("/", 2);
  if (typed === "*") return { resource: "*", group: "*", subresource, unknown: false, namespaced: true };
  const dot = typed.indexOf(".");
  const name = dot < 0 ? typed : typed.slice(0, dot);
  const kind = lookupKind(name);
  if (kind && (dot < 0 || groupOf(kind.apiVersion) === typed.slice(dot + 1))) {
    return { resource: kind.plural, group: groupOf(kind.apiVersion), subresource, unknown: false, namespaced: kind.namespaced };
  }
  return { resource: name.toLowerCase(), group: dot < 0 ? "" : typed.slice(dot + 1), subresource, unknown: true, namespaced: true };
}

function canICommand(session: Session) {
  return defineCommand({
    meta: { name: "can-i", description: "Check whether you (or --as USER, impersonated) may do something: prints yes or no" },
    setup: strictFlags,
    args: {
      verb: { type: "positional", description: `${KNOWN_VERBS.join("|")}|*`, required: false },
      resource: { type: "positional", description: "pods, deployments.apps, pods/log, …, or a path like /metrics", required: false },
      "all-namespaces": { type: "boolean", alias: "A", description: "in every namespace (cluster scope)" },
      quiet: { type: "boolean", alias: "q", description: "print nothing: the exit code is the answer" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const [verb, what, name = "", ...extra] = args._.map(String);
      if (!verb || !what || extra.length > 0) throw new CliError(`say what to check: ${USAGE}`);
      if (verb !== "*" && !KNOWN_VERBS.includes(verb)) throw new CliError(`unknown verb "${verb}": use one of ${KNOWN_VERBS.join(", ")} or "*"`);
      let resourceAttributes, nonResourceAttributes;
      if (what.startsWith("/")) {
        if (name !== "") throw new CliError("a path (non-resource URL) takes no NAME");
        nonResourceAttributes = { path: what, verb };
      } else {
        const t = parseReviewResource(what);
        if (t.unknown && !args.quiet) session.io.err(`Warning: the server doesn't have a resource type "${t.resource}"\n`);
        const namespace = args["all-namespaces"] || !t.namespaced ? "" : args.namespace || "default";
        resourceAttributes = { verb, resource: t.resource, group: t.group, subresource: t.subresource, name, namespace };
      }
      // With the global --as/--as-group the apiserver impersonates that user (which needs
      // `impersonate` permission), and the review asks about that identity, as kubectl does.
      const api = await connect(session, args);
      const res = await createClient(AuthorizationService, api.transport).createSelfSubjectAccessReview({ resourceAttributes, nonResourceAttributes }, { timeoutMs: CALL_TIMEOUT_MS });
      const allowed = res.status?.allowed ?? false;
      if (!args.quiet) session.io.out(allowed ? "yes\n" : `no${res.status?.reason ? ` - ${res.status.reason}` : ""}\n`);
      if (!allowed) throw new AlreadyReported();
    },
  });
}

function whoamiCommand(session: Session) {
  return defineCommand({
    meta: { name: "whoami", description: "Show who the apiserver takes you for: user name, groups, how you authenticated" },
    setup: strictFlags,
    args: {
      output: { type: "string", alias: "o", description: "json for a machine-readable answer", valueHint: "json" },
      ...serverArg,
    },
    async run({ args }) {
      if (args.output !== undefined && args.output !== "json") throw new CliError(`unknown output format "${args.output}": use -o json or nothing`);
      const api = await connect(session, args);
      const { userInfo } = await createClient(AuthorizationService, api.transport).whoAmI({}, { timeoutMs: CALL_TIMEOUT_MS });
      const u = { username: userInfo?.username ?? "", uid: userInfo?.uid ?? "", groups: userInfo?.groups ?? [], authenticatedBy: userInfo?.authenticatedBy ?? "" };
      if (args.output === "json") return session.io.out(`${JSON.stringify(u, null, 2)}\n`);
      const rows = [["ATTRIBUTE", "VALUE"], ["Username", u.username], ...(u.uid ? [["UID", u.uid]] : []), ["Groups", `[${u.groups.join(" ")}]`]];
      if (u.authenticatedBy) rows.push(["Authenticated by", u.authenticatedBy]);
      const width = Math.max(...rows.map((r) => r[0].length)) + 3;
      session.io.out(rows.map(([k, v]) => `${k.padEnd(width)}${v}`.trimEnd()).join("\n") + "\n");
    },
  });
}

export function authCommand(session: Session) {
  return defineCommand({
    meta: { name: "auth", description: "Inspect authorization: can-i, whoami" },
    subCommands: { "can-i": canICommand(session), whoami: whoamiCommand(session) },
  });
}
