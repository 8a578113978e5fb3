// skiffctl get KIND[,KIND…] [NAME…] | KIND/NAME…  — tables, -o wide|yaml|json|name, -l, --field-selector,
// -n / -A, -w to keep printing changes as they happen, and --chunk-size N (List in pages of N,
// default 500 like kubectl; 0 = one List for everything).
import { Code, ConnectError } from "@connectrpc/connect";
import { defineCommand } from "citty";
import type { ApiObject, Kind } from "../../api/registry.ts";
import { DEFAULT_PAGE_SIZE, listAllPages } from "../../client/pager.ts";
import { connect, namespaceArgs, namespaceOf, resolveKind, serverArg, type Api, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError } from "../errors.ts";
import { createStreamingTable, formatObjectsTable, type TableOptions } from "../printers/get-table.ts";
import { formatList, formatObject, type ObjectFormat } from "../printers/object.ts";
import { strictFlags } from "./flags.ts";

export interface Target {
  kind: Kind;
  names: string[];
}

// `get all`, as in Kubernetes: the workload kinds a user usually wants to see together.
const ALL = ["pods", "services", "deployments", "replicasets"];

/** "pods,svc web db" or "pod/web svc/web" -> kinds with names. */
export function parseTargets(positionals: string[]): Target[] {
  if (positionals.length === 0) throw new CliError("you must say what to get, e.g. `skiffctl get pods` (or KIND/NAME)");
  if (positionals[0].includes("/")) {
    const targets: Target[] = [];
    for (const p of positionals) {
      const [kindName, name, extra] = p.split("/");
      if (!name || extra !== undefined) throw new CliError(`"${p}": mix of KIND/NAME and plain arguments; use KIND/NAME for every one`);
      const kind = resolveKind(kindName);
      const t = targets.find((x) => x.kind === kind);
      if (t) t.names.push(name);
      else targets.push({ kind, names: [name] });
    }
    return targets;
  }
  const names = positionals.slice(1);
  const kindNames = positionals[0].split(",").filter(Boolean).flatMap((k) => (k === "all" ? ALL : [k]));
  const kinds: Kind[] = [];
  for (const k of kindNames.map(resolveKind)) if (!kinds.includes(k)) kinds.push(k);
  return kinds.map((kind) => ({ kind, names: [...names] }));
}

export function parseOutput(o: string | undefined): { table: boolean; wide: boolean; format?: ObjectFormat } {
  if (!o) return { table: true, wide: false };
  if (o === "wide") return { table: true, wide: true };
  if (o === "yaml" || o === "json" || o === "name") return { table: false, wide: false, format: o };
  throw new CliError(`unknown output format "${o}": use wide, yaml, json or name`);
}

interface GetArgs {
  namespace?: string;
  allNamespaces?: boolean;
  selector?: string;
  fieldSelector?: string;
  /** Items per List page (0 = all at once). */
  chunkSize?: number;
}

export function parseChunkSize(v: string | undefined): number {
  if (v === undefined) return DEFAULT_PAGE_SIZE;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new CliError(`--chunk-size "${v}": must be a whole number >= 0 (0 lists everything in one request)`);
  return Number(v);
}

interface Fetched {
  kind: Kind;
  items: ApiObject[];
  resourceVersion: string;
}

function notFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}

async function fetchTarget(api: Api, t: Target, args: GetArgs, errors: string[]): Promise<Fetched> {
  const client = api.client(t.kind);
  const ns = t.kind.namespaced ? (args.allNamespaces ? "" : namespaceOf(args)) : "";
  if (t.names.length === 0) {
    const res = await listAllPages(client, ns, { labelSelector: args.selector, fieldSelector: args.fieldSelector, pageSize: args.chunkSize });
    return { kind: t.kind, ...res };
  }
  if (args.allNamespaces && t.kind.namespaced) throw new CliError("a name cannot be combined with --all-namespaces (-A): say which namespace with -n");
  const items: ApiObject[] = [];
  for (const name of t.names) {
    try {
      items.push(await client.get(ns, name));
    } catch (err) {
      if (!notFound(err)) throw err;
      errors.push(describeError(err, api.servers));
    }
  }
  return { kind: t.kind, items, resourceVersion: "" };
}

function noneFound(targets: Target[], args: GetArgs): string {
  const namespaced = targets.some((t) => t.kind.namespaced);
  if (!namespaced || args.allNamespaces) return "No resources found\n";
  return `No resources found in ${namespaceOf(args)} namespace.\n`;
}

async function watchTarget(session: Session, api: Api, t: Target, args: GetArgs, out: ReturnType<typeof parseOutput>): Promise<void> {
  if (t.names.length > 1) throw new CliError("watch (-w) takes at most one name");
  const { io } = session;
  const client = api.client(t.kind);
  const ns = t.kind.namespaced ? (args.allNamespaces ? "" : namespaceOf(args)) : "";
  const fields = [args.fieldSelector, t.names.length ? `metadata.name=${t.names[0]}` : undefined].filter(Boolean).join(",");
  const listed = await listAllPages(client, ns, { labelSelector: args.selector, fieldSelector: fields, pageSize: args.chunkSize });
  if (t.names.length && listed.items.length === 0) throw new CliError(`${t.kind.singular} "${t.names[0]}" not found`);
  const tableOpts: TableOptions = { wide: out.wide, allNamespaces: args.allNamespaces };
  const table = createStreamingTable(t.kind, tableOpts, (s) => io.out(s));
  const print = (objs: ApiObject[]) => {
    if (out.table) return table.print(objs);
    for (const o of objs) io.out(out.format === "yaml" ? `---\n${formatObject(t.kind, o, "yaml")}` : formatObject(t.kind, o, out.format!));
  };
  print(listed.items);
  try {
    const stream = client.watch(ns, { labelSelector: args.selector, fieldSelector: fields, resourceVersion: listed.resourceVersion, signal: io.signal });
    for await (const ev of stream) {
      if (ev.type !== "BOOKMARK") print([ev.object]);
    }
  } catch (err) {
    if (io.signal.aborted) return;
    throw err;
  }
}

export function getCommand(session: Session) {
  return defineCommand({
    meta: { name: "get", description: "List objects: get KIND[,KIND…] [NAME…] or get KIND/NAME…" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "kind(s), e.g. pods, deploy,svc, all; or KIND/NAME", required: true },
      output: { type: "string", alias: "o", description: "wide, yaml, json or name", valueHint: "FORMAT" },
      selector: { type: "string", alias: "l", description: "label selector, e.g. app=web,tier!=db", valueHint: "SELECTOR" },
      "field-selector": { type: "string", description: "field selector, e.g. spec.nodeName=n1", valueHint: "SELECTOR" },
      "all-namespaces": { type: "boolean", alias: "A", description: "every namespace (adds a NAMESPACE column)" },
      watch: { type: "boolean", alias: "w", description: "after listing, print changes as they happen" },
      "chunk-size": { type: "string", description: "list in pages of N items (default 500; 0 = all in one request)", valueHint: "N" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const targets = parseTargets(args._.map(String));
      const out = parseOutput(args.output);
      const gargs: GetArgs = {
        namespace: args.namespace,
        allNamespaces: args["all-namespaces"] === true,
        selector: args.selector,
        fieldSelector: args["field-selector"],
        chunkSize: parseChunkSize(args["chunk-size"]),
      };
      const api = await connect(session, args);
      if (args.watch) {
        if (targets.length !== 1) throw new CliError("watch (-w) works on one kind at a time");
        return watchTarget(session, api, targets[0], gargs, out);
      }
      const errors: string[] = [];
      const fetched: Fetched[] = [];
      for (const t of targets) fetched.push(await fetchTarget(api, t, gargs, errors));
      const total = fetched.reduce((n, f) => n + f.items.length, 0);
      const { io } = session;
      if (out.table) {
        const opts: TableOptions = { wide: out.wide, allNamespaces: gargs.allNamespaces, withKind: targets.length > 1 };
        const tables = fetched.map((f) => formatObjectsTable(f.kind, f.items, opts)).filter(Boolean);
        if (tables.length) io.out(tables.join("\n"));
      } else if (total > 0 || targets.every((t) => t.names.length === 0)) {
        const single = targets.length === 1 && targets[0].names.length === 1 && total === 1;
        io.out(single ? formatObject(fetched[0].kind, fetched[0].items[0], out.format!) : formatList(fetched.flatMap((f) => f.items.map((obj) => ({ kind: f.kind, obj }))), out.format!));
      }
      if (total === 0 && errors.length === 0 && out.table) io.err(noneFound(targets, gargs));
      if (errors.length) {
        io.err(errors.map((e) => `Error: ${e}\n`).join(""));
        throw new AlreadyReported();
      }
    },
  });
}
