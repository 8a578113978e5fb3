// skiffctl scale deploy/web --replicas N [--current-replicas M] — sets spec.replicas of
// deployments and replica sets (by name, or every one matching -l / --all), each with a
// conditional update retried on conflict. The preconditions are checked on every attempt.
import { defineCommand } from "citty";
import type { ApiObject } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, resolveKind, serverArg, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { updateWithRetry } from "../mutate.ts";
import { resourceRef } from "../printers/object.ts";
import { namedTargets, type ObjectRef } from "../targets.ts";
import { parseCount, strictFlags } from "./flags.ts";
import { listAllPages } from "../../client/pager.ts";

const SCALABLE = ["Deployment", "ReplicaSet"];
const USAGE = "skiffctl scale deploy/NAME --replicas N";

export function scaleCommand(session: Session) {
  return defineCommand({
    meta: { name: "scale", description: "Set the number of replicas: scale deploy/NAME|rs/NAME --replicas N" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "deploy/NAME, rs/NAME, or KIND NAME…", required: false },
      replicas: { type: "string", description: "the new number of replicas (0 or more)", valueHint: "N" },
      "current-replicas": { type: "string", description: "precondition: only scale if the current replicas are this", valueHint: "N" },
      "resource-version": { type: "string", description: "precondition: only scale if the resource version is this", valueHint: "RV" },
      selector: { type: "string", alias: "l", description: "scale every object of the kind matching this label selector", valueHint: "SELECTOR" },
      all: { type: "boolean", description: "scale every object of the kind in the namespace" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const { io } = session;
      const replicas = parseCount("replicas", args.replicas);
      if (replicas === undefined) throw new CliError(`--replicas N is required (0 or more): ${USAGE}`);
      const current = parseCount("current-replicas", args["current-replicas"]);
      const rv = args["resource-version"] || undefined;
      const positionals = args._.map(String);
      const ns = namespaceOf(args);
      const bySelector = args.selector !== undefined || args.all === true;
      if (bySelector && (positionals.length !== 1 || positionals[0].includes("/"))) {
        throw new CliError("with -l or --all give just the kind, e.g. skiffctl scale deploy -l app=web --replicas 3");
      }
      let refs: ObjectRef[] = bySelector ? [] : namedTargets(positionals, SCALABLE, "scale", USAGE);
      const api = await connect(session, args);
      if (bySelector) {
        const kind = resolveKind(positionals[0]);
        if (!SCALABLE.includes(kind.kind)) throw new CliError(`cannot scale ${kind.plural}: only deployments and replicasets`);
        const { items } = await listAllPages(api.client(kind), ns, { labelSelector: args.selector ?? "" });
        refs = items.map((o) => ({ kind, name: o.metadata!.name }));
        if (refs.length === 0) throw new CliError(`no ${kind.plural} found in namespace "${ns}"`);
      }
      let failed = false;
      for (const { kind, name } of refs) {
        try {
          await updateWithRetry(api.client(kind), ns, name, (obj: ApiObject) => {
            const spec = obj.spec as { replicas?: number };
            if (rv !== undefined && obj.metadata!.resourceVersion !== rv) {
              throw new CliError(`Expected resource version to be ${rv}, was ${obj.metadata!.resourceVersion}`);
            }
            const was = spec.replicas ?? 1;
            if (current !== undefined && was !== current) throw new CliError(`Expected replicas to be ${current}, was ${was}`);
            if (spec.replicas === replicas) return false;
            spec.replicas = replicas;
            return true;
          });
          io.out(`${resourceRef(kind)}/${name} scaled\n`);
        } catch (err) {
          if (isUnreachable(err)) throw err;
          io.err(`Error: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}
