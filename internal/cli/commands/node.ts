// skiffctl cordon|uncordon NODE… and drain NODE… — node maintenance. cordon sets
// spec.unschedulable (the scheduler places nothing new there); drain cordons, evicts the node's
// pods (see ../drain.ts for which) and waits until they are gone.
import { create } from "@bufbuild/protobuf";
import { defineCommand } from "citty";
import { NodeSpecSchema, type Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName } from "../../api/registry.ts";
import type { ResourceClient } from "../../client/resource-client.ts";
import { connect, serverArg, type Api, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { planDrain, podRef, waitForEviction } from "../drain.ts";
import { isNotFound, updateWithRetry } from "../mutate.ts";
import { parseGracePeriod } from "./delete.ts";
import { formatDuration, parseDuration, strictFlags } from "./flags.ts";
import { listAllPages } from "../../client/pager.ts";

const nodes = (api: Api) => api.client(kindByName("Node")!) as unknown as ResourceClient<Node>;
const pods = (api: Api) => api.client(kindByName("Pod")!) as unknown as ResourceClient<Pod>;

const nodeArgs = {
  node: { type: "positional", description: "node name(s)", required: false },
  selector: { type: "string", alias: "l", description: "every node matching this label selector", valueHint: "SELECTOR" },
  ...serverArg,
} as const;

/** The nodes named (NODE or node/NODE), or those matching -l. */
async function nodeNames(api: Api, positionals: string[], selector: string | undefined): Promise<string[]> {
  if (selector !== undefined) {
    if (positionals.length) throw new CliError("give node names or -l SELECTOR, not both");
    const { items } = await listAllPages(nodes(api), "", { labelSelector: selector });
    if (items.length === 0) throw new CliError(`no nodes match "${selector}"`);
    return items.map((n) => n.metadata!.name);
  }
  return positionals.map((p) => {
    const m = /^(?:nodes?|no)\/(.+)$/.exec(p);
    if (p.includes("/") && !m) throw new CliError(`"${p}" is not a node: give NODE or node/NODE`);
    return m ? m[1] : p;
  });
}

/** Sets spec.unschedulable; prints "node/n1 cordoned" or "node/n1 already cordoned". */
async function setUnschedulable(session: Session, api: Api, name: string, on: boolean): Promise<void> {
  const { changed } = await updateWithRetry(nodes(api), "", name, (n) => {
    n.spec ??= create(NodeSpecSchema);
    if (n.spec.unschedulable === on) return false;
    n.spec.unschedulable = on;
    return true;
  });
  session.io.out(`node/${name} ${changed ? "" : "already "}${on ? "cordoned" : "uncordoned"}\n`);
}

function cordonCommand(session: Session, on: boolean) {
  const verb = on ? "cordon" : "uncordon";
  return defineCommand({
    meta: { name: verb, description: on ? "Mark nodes unschedulable: cordon NODE…" : "Mark nodes schedulable again: uncordon NODE…" },
    setup: strictFlags,
    args: nodeArgs,
    async run({ args }) {
      const positionals = args._.map(String);
      if (positionals.length === 0 && args.selector === undefined) throw new CliError(`which node? skiffctl ${verb} NODE`);
      const api = await connect(session, args);
      let failed = false;
      for (const name of await nodeNames(api, positionals, args.selector)) {
        try {
          await setUnschedulable(session, api, name, on);
        } catch (err) {
          if (isUnreachable(err)) throw err;
          session.io.err(`Error: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}

interface DrainArgs {
  force: boolean;
  ignoreDaemonSets: boolean;
  deleteEmptyDirData: boolean;
  gracePeriod?: bigint;
  podSelector?: string;
  timeoutMs: number;
}

/** Cordons, evicts and waits for one node; throws with the reason the node is not drained. */
async function drainNode(session: Session, api: Api, name: string, opts: DrainArgs): Promise<void> {
  const { io } = session;
  await setUnschedulable(session, api, name, true);
  const { items } = await listAllPages(pods(api), "", { fieldSelector: `spec.nodeName=${name}`, labelSelector: opts.podSelector });
  const plan = planDrain(items, opts);
  if (plan.refusals.length) throw new CliError(`unable to drain node "${name}": ${plan.refusals.join("; ")}`);
  if (plan.warnings.length) io.err(`Warning: ${plan.warnings.join("; ")}\n`);
  const timeout = opts.timeoutMs > 0 ? AbortSignal.timeout(opts.timeoutMs) : undefined;
  const signal = timeout ? AbortSignal.any([io.signal, timeout]) : io.signal;
  const evicted: Pod[] = [];
  for (const p of plan.evict) {
    io.out(`evicting pod ${podRef(p)}\n`);
    try {
      await pods(api).delete(p.metadata!.namespace, p.metadata!.name, { uid: p.metadata!.uid, gracePeriodSeconds: opts.gracePeriod });
      evicted.push(p);
    } catch (err) {
      if (!isNotFound(err)) throw err; // gone already
      io.out(`pod/${p.metadata!.name} evicted\n`);
    }
  }
  const left = await waitForEviction(api, name, evicted, signal, (p) => io.out(`pod/${p.metadata!.name} evicted\n`));
  if (left.length) {
    if (!timeout?.aborted) throw new AlreadyReported(); // Ctrl-C
    throw new CliError(`unable to drain node "${name}": timed out after ${formatDuration(opts.timeoutMs)} waiting for pods to be deleted: ${left.map(podRef).join(", ")}`);
  }
  io.out(`node/${name} drained\n`);
}

function drainCommand(session: Session) {
  return defineCommand({
    meta: { name: "drain", description: "Cordon nodes and evict their pods: drain NODE… [--ignore-daemonsets] [--force]" },
    setup: strictFlags,
    args: {
      ...nodeArgs,
      force: { type: "boolean", description: "also evict pods no controller owns (they are not recreated)" },
      "ignore-daemonsets": { type: "boolean", description: "leave DaemonSet-managed pods on the node instead of refusing" },
      "delete-emptydir-data": { type: "boolean", description: "also evict pods with emptyDir volumes (their data is lost)" },
      "grace-period": { type: "string", description: "seconds each pod gets to stop (default -1: the pod's own)", valueHint: "N" },
      timeout: { type: "string", description: "give up after this long, e.g. 5m (default: no limit)", valueHint: "DURATION" },
      "pod-selector": { type: "string", description: "only evict pods matching this label selector", valueHint: "SELECTOR" },
    },
    async run({ args }) {
      const positionals = args._.map(String);
      if (positionals.length === 0 && args.selector === undefined) throw new CliError("which node? skiffctl drain NODE");
      const opts: DrainArgs = {
        force: args.force === true,
        ignoreDaemonSets: args["ignore-daemonsets"] === true,
        deleteEmptyDirData: args["delete-emptydir-data"] === true,
        gracePeriod: parseGracePeriod(args["grace-period"]),
        podSelector: args["pod-selector"],
        timeoutMs: parseDuration("timeout", args.timeout),
      };
      const api = await connect(session, args);
      let failed = false;
      for (const name of await nodeNames(api, positionals, args.selector)) {
        try {
          await drainNode(session, api, name, opts);
        } catch (err) {
          if (isUnreachable(err) || err instanceof AlreadyReported) throw err;
          session.io.err(`Error: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}

export const cordonCommands = (session: Session) => ({
  cordon: cordonCommand(session, true),
  uncordon: cordonCommand(session, false),
  drain: drainCommand(session),
});
