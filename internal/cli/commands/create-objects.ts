// kubectl's generators: `skiffctl create namespace|serviceaccount|configmap|secret generic|deployment
// NAME …` build the object a manifest would hold and go through the same decoding as `apply`
// (so a bad value is refused with the field's name), then create it — or, with
// `--dry-run=client -o yaml`, print it as a manifest to edit and apply later.
import { readFileSync, statSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { defineCommand, type CommandDef } from "citty";
import { decodeDocument } from "../manifest.ts";
import { connect, namespaceArgs, namespaceOf, serverArg, type Session } from "../context.ts";
import { CliError } from "../errors.ts";
import { formatObject, resourceRef, type ObjectFormat } from "../printers/object.ts";
import { flagValues, parseCount, strictFlags } from "./flags.ts";

type Manifest = Record<string, unknown>;

/** What every generator shares: dry-run and output. */
const outputArgs = {
  "dry-run": { type: "string", description: 'client: print the object without sending it; server: let the server check it and store nothing; none (default)', valueHint: "MODE" },
  output: { type: "string", alias: "o", description: "print the object as yaml, json or name instead of a one-line summary", valueHint: "FORMAT" },
} as const;

function parseDryRun(v: string | undefined): "none" | "client" | "server" {
  if (v === undefined || v === "" || v === "none") return "none";
  if (v === "client" || v === "server") return v;
  // citty turns a bare --dry-run into "true"; kubectl's old boolean meant client.
  if (v === "true") return "client";
  throw new CliError(`--dry-run must be none, client or server, got "${v}"`);
}

function parseFormat(v: string | undefined): ObjectFormat | undefined {
  if (v === undefined || v === "") return undefined;
  if (v === "yaml" || v === "json" || v === "name") return v;
  throw new CliError(`unknown output format "${v}": use yaml, json or name`);
}

/** The name and what follows `--` (a Deployment's command), which citty also hands over as positionals. */
function nameAndCommand(positionals: unknown[], rawArgs: string[], usage: string): { name: string; command: string[] } {
  const dash = rawArgs.indexOf("--");
  const command = dash >= 0 ? rawArgs.slice(dash + 1) : [];
  const names = positionals.map(String).slice(0, positionals.length - command.length);
  if (names.length !== 1) throw new CliError(`give exactly one name: ${usage}`);
  return { name: names[0], command };
}

/** key=value pairs of --from-literal, in order; a key given twice is an error (kubectl's rule). */
function literals(raw: string[], into: Record<string, string>): void {
  for (const l of raw) {
    const eq = l.indexOf("=");
    if (eq <= 0) throw new CliError(`--from-literal must be KEY=VALUE, got "${l}"`);
    put(into, l.slice(0, eq), l.slice(eq + 1));
  }
}

function put(into: Record<string, string>, key: string, value: string): void {
  if (key in into) throw new CliError(`the key "${key}" is given more than once`);
  into[key] = value;
}

/** --from-file=PATH (key = file name), KEY=PATH, or a directory (one key per regular file in it). */
function files(raw: string[], into: Record<string, string>, encoding: "utf8" | "base64"): void {
  for (const f of raw) {
    const eq = f.indexOf("=");
    const [key, path] = eq > 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [undefined, f];
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new CliError(`--from-file: cannot read "${path}"`);
    }
    if (st.isDirectory()) {
      if (key) throw new CliError(`--from-file: "${path}" is a directory; a KEY= prefix needs a file`);
      for (const e of readdirSync(path, { withFileTypes: true })) {
        if (e.isFile()) put(into, e.name, readFileSync(join(path, e.name)).toString(encoding));
      }
    } else {
      put(into, key ?? basename(path), readFileSync(path).toString(encoding));
    }
  }
}

/** A label-safe container name from an image reference: "registry:5000/team/web:1.2" → "web". */
export function containerNameOf(image: string): string {
  const last = image.split("/").pop()!.split("@")[0].split(":")[0];
  const name = last.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
  return name || "app";
}

interface Generator {
  name: string;
  aliases: string[];
  description: string;
  usage: string;
  args: Record<string, unknown>;
  build(name: string, args: Record<string, any>, rawArgs: string[], command: string[]): Manifest;
}

const generators: Generator[] = [
  {
    name: "namespace",
    aliases: ["ns"],
    description: "Create a namespace: create namespace NAME",
    usage: "skiffctl create namespace NAME",
    args: {},
    build: (name) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } }),
  },
  {
    name: "serviceaccount",
    aliases: ["sa"],
    description: "Create a ServiceAccount: create serviceaccount NAME [-n NS]",
    usage: "skiffctl create serviceaccount NAME [-n NS]",
    args: {},
    build: (name) => ({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name } }),
  },
  {
    name: "configmap",
    aliases: ["cm"],
    description: "Create a ConfigMap: create configmap NAME [--from-literal K=V]… [--from-file [K=]PATH]…",
    usage: "skiffctl create configmap NAME [--from-literal KEY=VALUE]… [--from-file [KEY=]PATH]…",
    args: {
      "from-literal": { type: "string", description: "a KEY=VALUE entry (repeatable)", valueHint: "KEY=VALUE" },
      "from-file": { type: "string", description: "a file's content under its name or KEY, or every file of a directory (repeatable)", valueHint: "[KEY=]PATH" },
    },
    build(name, _args, rawArgs) {
      const data: Record<string, string> = {};
      literals(flagValues(rawArgs, "from-literal"), data);
      files(flagValues(rawArgs, "from-file"), data, "utf8");
      return { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data };
    },
  },
  {
    name: "secret",
    aliases: [],
    description: "Create a Secret: create secret generic NAME [--from-literal K=V]… [--from-file [K=]PATH]… [--type T]",
    usage: "skiffctl create secret generic NAME [--from-literal KEY=VALUE]… [--from-file [KEY=]PATH]… [--type TYPE]",
    args: {
      "from-literal": { type: "string", description: "a KEY=VALUE entry (repeatable)", valueHint: "KEY=VALUE" },
      "from-file": { type: "string", description: "a file's content under its name or KEY, or every file of a directory (repeatable)", valueHint: "[KEY=]PATH" },
      type: { type: "string", description: "the Secret's type (default Opaque)", valueHint: "TYPE" },
    },
    build(name, args, rawArgs) {
      const data: Record<string, string> = {};
      const lit: Record<string, string> = {};
      literals(flagValues(rawArgs, "from-literal"), lit);
      for (const [k, v] of Object.entries(lit)) put(data, k, Buffer.from(v).toString("base64"));
      files(flagValues(rawArgs, "from-file"), data, "base64");
      return { apiVersion: "v1", kind: "Secret", metadata: { name }, type: args.type || "Opaque", data };
    },
  },
  {
    name: "deployment",
    aliases: ["deploy"],
    description: "Create a Deployment: create deployment NAME --image IMAGE [--replicas N] [--port P] [-- COMMAND…]",
    usage: "skiffctl create deployment NAME --image IMAGE [--replicas N] [--port PORT] [-- COMMAND ARG…]",
    args: {
      image: { type: "string", description: "the container image (repeatable: one container each)", valueHint: "IMAGE" },
      replicas: { type: "string", description: "how many pods (default 1)", valueHint: "N" },
      port: { type: "string", description: "the container port the pods serve on", valueHint: "PORT" },
    },
    build(name, args, rawArgs, command) {
      const images = flagValues(rawArgs, "image");
      if (images.length === 0) throw new CliError("--image IMAGE is required: skiffctl create deployment NAME --image IMAGE");
      if (command.length > 0 && images.length > 1) throw new CliError("a command after -- needs exactly one --image");
      const port = args.port === undefined ? undefined : Number(args.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
        throw new CliError(`--port must be a port number 1-65535, got "${args.port}"`);
      }
      const used = new Set<string>();
      const containers = images.map((image) => {
        let cname = containerNameOf(image);
        for (let i = 2; used.has(cname); i++) cname = `${containerNameOf(image)}-${i}`;
        used.add(cname);
        return {
          name: cname,
          image,
          ...(command.length ? { command } : {}),
          ...(port !== undefined ? { ports: [{ containerPort: port }] } : {}),
        };
      });
      const labels = { app: name };
      return {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name, labels },
        spec: {
          replicas: parseCount("replicas", args.replicas) ?? 1,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers } },
        },
      };
    },
  },
];

function generatorCommand(session: Session, g: Generator, sub?: string) {
  return defineCommand({
    meta: { name: sub ?? g.name, description: g.description },
    setup: strictFlags,
    args: {
      name: { type: "positional", description: "the new object's name", required: false },
      ...(g.args as Record<string, { type: "string" }>),
      ...outputArgs,
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args, rawArgs }) {
      const { name, command } = nameAndCommand(args._, rawArgs, g.usage);
      if (command.length > 0 && g.name !== "deployment") throw new CliError(`nothing may follow -- here: ${g.usage}`);
      const dryRun = parseDryRun(args["dry-run"]);
      const format = parseFormat(args.output);
      const manifest = g.build(name, args, rawArgs, command);
      const { kind, object } = decodeDocument({ source: "skiffctl create", index: 1, value: manifest });
      if (kind.namespaced) object.metadata!.namespace = namespaceOf(args);
      const show = (o: typeof object, verb: string) =>
        session.io.out(format ? formatObject(kind, o, format) : `${resourceRef(kind)}/${name} ${verb}\n`);
      if (dryRun === "client") return show(object, "created (dry run)");
      const api = await connect(session, args);
      const created = await api.client(kind).create(object, { dryRun: dryRun === "server" });
      show(created, dryRun === "server" ? "created (server dry run)" : "created");
    },
  });
}

/** The generator subcommands of `skiffctl create`, under their names and kubectl's short names. */
export function objectGenerators(session: Session): Record<string, CommandDef<any>> {
  const out: Record<string, CommandDef<any>> = {};
  for (const g of generators) {
    const cmd: CommandDef<any> =
      g.name === "secret"
        ? defineCommand({ meta: { name: "secret", description: "Create a Secret: create secret generic NAME …" }, subCommands: { generic: generatorCommand(session, g, "generic") } })
        : generatorCommand(session, g);
    out[g.name] = cmd;
    for (const a of g.aliases) out[a] = cmd;
  }
  return out;
}
