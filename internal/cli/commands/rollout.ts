// skiffctl rollout status|history|undo|pause|resume deploy/NAME — follow and steer a
// Deployment's rollouts. The Deployment controller does the rolling; these commands read its
// status and ReplicaSets (see ../rollout.ts) and edit the Deployment's spec.
import { Code, ConnectError } from "@connectrpc/connect";
import { defineCommand } from "citty";
import type { Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { kindByName } from "../../api/registry.ts";
import type { ResourceClient } from "../../client/resource-client.ts";
import { connect, namespaceArgs, namespaceOf, serverArg, type Api, type CliIO, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { updateWithRetry } from "../mutate.ts";
import { podTemplateLines } from "../printers/describe-pod.ts";
import { resourceRef } from "../printers/object.ts";
import { formatTable } from "../printers/table.ts";
import { historyRows, ownedReplicaSets, replicaSetForRevision, revisionOf, rollBack, rolloutState } from "../rollout.ts";
import { namedTargets } from "../targets.ts";
import { formatDuration, parseCount, parseDuration, strictFlags } from "./flags.ts";
import { listAllPages } from "../../client/pager.ts";

const DEPLOYMENT = kindByName("Deployment")!;
const REF = resourceRef(DEPLOYMENT);

const targetArgs = {
  deployment: { type: "positional", description: "deploy/NAME or deployment NAME", required: false },
  ...namespaceArgs,
  ...serverArg,
} as const;

const deployments = (api: Api) => api.client(DEPLOYMENT) as unknown as ResourceClient<Deployment>;

/** The deployments named, e.g. for "rollout undo": deploy/NAME… or deployment NAME…. */
function names(positionals: string[], verb: string): string[] {
  return namedTargets(positionals, ["Deployment"], `rollout ${verb}`, `skiffctl rollout ${verb} deploy/NAME`).map((r) => r.name);
}

/** Runs `each` for every name; errors are printed one per line and end the command with 1. */
async function forEach(session: Session, api: Api, list: string[], each: (name: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const name of list) {
    try {
      await each(name);
    } catch (err) {
      if (isUnreachable(err)) throw err;
      session.io.err(`Error: ${describeError(err, api.servers)}\n`);
      failed = true;
    }
  }
  if (failed) throw new AlreadyReported();
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * Prints the rollout's progress, each change once, until it is done (or, without `watch`, once).
 * List, then watch from the listed version; a watch that ends or is too old starts over.
 */
async function followRollout(io: CliIO, api: Api, ns: string, name: string, opts: { revision: number; watch: boolean; timeoutMs: number }): Promise<void> {
  const timeout = opts.timeoutMs > 0 ? AbortSignal.timeout(opts.timeoutMs) : undefined;
  const signal = timeout ? AbortSignal.any([io.signal, timeout]) : io.signal;
  const client = deployments(api);
  const fieldSelector = `metadata.name=${name}`;
  let last = "";
  const show = (d: Deployment): boolean => {
    const state = rolloutState(d, opts.revision);
    if (state.message !== last) io.out(state.message);
    last = state.message;
    return state.done || !opts.watch;
  };
  try {
    for (let first = true; ; first = false) {
      const listed = await listAllPages(client, ns, { fieldSelector, signal });
      if (listed.items.length === 0) {
        throw new CliError(first ? `deployment "${name}" not found in namespace "${ns}"` : `deployment "${name}" was deleted while waiting for its rollout`);
      }
      if (show(listed.items[0])) return;
      try {
        for await (const ev of client.watch(ns, { fieldSelector, resourceVersion: listed.resourceVersion, signal })) {
          if (ev.type === "DELETED") throw new CliError(`deployment "${name}" was deleted while waiting for its rollout`);
          if (ev.type !== "BOOKMARK" && show(ev.object)) return;
        }
      } catch (err) {
        if (signal.aborted || !(err instanceof ConnectError && err.code === Code.OutOfRange)) throw err;
      }
      await sleep(500, signal);
      if (signal.aborted) throw new Error("aborted");
    }
  } catch (err) {
    if (timeout?.aborted) throw new CliError(`timed out after ${formatDuration(opts.timeoutMs)} waiting for deployment "${name}" rollout to finish`);
    if (io.signal.aborted) throw new AlreadyReported(); // Ctrl-C: not a success
    throw err;
  }
}

function statusCommand(session: Session) {
  return defineCommand({
    meta: { name: "status", description: "Follow a rollout until it is done: rollout status deploy/NAME" },
    setup: strictFlags,
    args: {
      ...targetArgs,
      watch: { type: "boolean", alias: "w", description: "keep watching until the rollout is done (--watch=false: print the status once)", default: true },
      timeout: { type: "string", description: "give up after this long, e.g. 5m (default: no limit)", valueHint: "DURATION" },
      revision: { type: "string", description: "fail unless the Deployment is at this revision", valueHint: "N" },
    },
    async run({ args }) {
      const list = names(args._.map(String), "status");
      if (list.length !== 1) throw new CliError("rollout status follows one deployment at a time");
      const opts = { watch: args.watch !== false, timeoutMs: parseDuration("timeout", args.timeout), revision: parseCount("revision", args.revision) ?? 0 };
      const api = await connect(session, args);
      await followRollout(session.io, api, namespaceOf(args), list[0], opts);
    },
  });
}

function historyCommand(session: Session) {
  return defineCommand({
    meta: { name: "history", description: "List a deployment's revisions: rollout history deploy/NAME [--revision N]" },
    setup: strictFlags,
    args: { ...targetArgs, revision: { type: "string", description: "show the pod template of this revision", valueHint: "N" } },
    async run({ args }) {
      const list = names(args._.map(String), "history");
      const revision = parseCount("revision", args.revision) ?? 0;
      const api = await connect(session, args);
      const ns = namespaceOf(args);
      await forEach(session, api, list, async (name) => {
        const d = await deployments(api).get(ns, name);
        const rss = await ownedReplicaSets(api, d);
        if (revision > 0) {
          const rs = rss.find((r) => revisionOf(r) === revision);
          if (!rs) throw new CliError(`unable to find revision ${revision} of deployment "${name}"`);
          session.io.out(`${REF}/${name} with revision #${revision}\n${podTemplateLines(rs.spec?.template).join("\n")}\n`);
          return;
        }
        const rows = historyRows(rss);
        const table = rows.length ? formatTable(["REVISION", "CHANGE-CAUSE"], rows.map(([r, c]) => [String(r), c])) : "No rollout history found.";
        session.io.out(`${REF}/${name}\n${table}\n${list.length > 1 ? "\n" : ""}`);
      });
    },
  });
}

function undoCommand(session: Session) {
  return defineCommand({
    meta: { name: "undo", description: "Go back to the previous (or a given) revision: rollout undo deploy/NAME [--to-revision N]" },
    setup: strictFlags,
    args: { ...targetArgs, "to-revision": { type: "string", description: "the revision to go back to (default: the previous one)", valueHint: "N" } },
    async run({ args }) {
      const list = names(args._.map(String), "undo");
      const toRevision = parseCount("to-revision", args["to-revision"]) ?? 0;
      const api = await connect(session, args);
      const ns = namespaceOf(args);
      await forEach(session, api, list, async (name) => {
        const paused = () =>
          new CliError(`you cannot roll back a paused deployment; resume it first with "skiffctl rollout resume deploy/${name}" and try again`);
        const current = await deployments(api).get(ns, name);
        if (current.spec?.paused) throw paused();
        const rs = replicaSetForRevision(current, await ownedReplicaSets(api, current), toRevision);
        const { changed } = await updateWithRetry(deployments(api), ns, name, (d) => {
          if (d.spec?.paused) throw paused();
          return rollBack(d, rs);
        });
        session.io.out(changed ? `${REF}/${name} rolled back\n` : `${REF}/${name} skipped rollback (current template already matches revision ${revisionOf(rs)})\n`);
      });
    },
  });
}

/** rollout pause / rollout resume: sets spec.paused; already so is an error, as in kubectl. */
function pauseCommand(session: Session, pause: boolean) {
  const verb = pause ? "pause" : "resume";
  return defineCommand({
    meta: { name: verb, description: pause ? "Stop rolling out changes: rollout pause deploy/NAME" : "Roll out changes again: rollout resume deploy/NAME" },
    setup: strictFlags,
    args: targetArgs,
    async run({ args }) {
      const list = names(args._.map(String), verb);
      const api = await connect(session, args);
      const ns = namespaceOf(args);
      await forEach(session, api, list, async (name) => {
        const { changed } = await updateWithRetry(deployments(api), ns, name, (d) => {
          if (d.spec!.paused === pause) return false;
          d.spec!.paused = pause;
          return true;
        });
        if (!changed) throw new CliError(`${DEPLOYMENT.plural}.apps "${name}" is ${pause ? "already paused" : "not paused"}`);
        session.io.out(`${REF}/${name} ${pause ? "paused" : "resumed"}\n`);
      });
    },
  });
}

export function rolloutCommand(session: Session) {
  return defineCommand({
    meta: { name: "rollout", description: "Manage deployment rollouts: status, history, undo, pause, resume" },
    subCommands: {
      status: statusCommand(session),
      history: historyCommand(session),
      undo: undoCommand(session),
      pause: pauseCommand(session, true),
      resume: pauseCommand(session, false),
    },
  });
}
