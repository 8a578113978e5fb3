// skiffctl delete KIND NAME… | KIND/NAME… | -f FILE|DIR|- | KIND -l SELECTOR | KIND --all
import { Code, ConnectError } from "@connectrpc/connect";
import { defineCommand } from "citty";
import type { Kind } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, resolveKind, serverArg, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { identifyDocument, ManifestError, targetNamespace } from "../manifest.ts";
import { readManifests } from "../manifest-source.ts";
import { resourceRef } from "../printers/object.ts";
import { filenameArg } from "./apply.ts";
import { flagValues, strictFlags } from "./flags.ts";
import { listAllPages } from "../../client/pager.ts";

interface Victim {
  kind: Kind;
  namespace: string;
  name: string;
}

const CASCADE: Record<string, string> = {
  background: "Background",
  foreground: "Foreground",
  orphan: "Orphan",
  true: "Background",
  false: "Orphan",
};

export function parseCascade(v: string | undefined): string {
  if (v === undefined || v === "") return "";
  const p = CASCADE[v.toLowerCase()];
  if (!p) throw new CliError(`--cascade must be background, foreground or orphan, got "${v}"`);
  return p;
}

export function parseGracePeriod(v: string | undefined): bigint | undefined {
  if (v === undefined || v === "" || v === "-1") return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`--grace-period must be a whole number of seconds (or -1 for the object's own), got "${v}"`);
  return BigInt(v);
}

/** The objects the files name; a document that names none is a failure of its own (as in apply). */
async function victimsFromFiles(files: string[], flagNs: string | undefined, readStdin: () => Promise<string>): Promise<{ victims: Victim[]; failures: string[] }> {
  const docs = await readManifests(files, { readStdin });
  const out: Victim[] = [];
  const errors: string[] = [];
  for (const d of docs) {
    try {
      const id = identifyDocument(d);
      out.push({ kind: id.kind, name: id.name, namespace: targetNamespace(id.kind, id.namespace, flagNs, id.where) });
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      errors.push(err.message);
    }
  }
  // Namespaces last: what is in them is deleted by name first.
  return { victims: [...out.filter((v) => v.kind.kind !== "Namespace"), ...out.filter((v) => v.kind.kind === "Namespace")], failures: errors };
}

export function deleteCommand(session: Session) {
  return defineCommand({
    meta: { name: "delete", description: "Delete objects by name, by file, or by label selector" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "kind (or KIND/NAME), then names", required: false },
      ...filenameArg,
      selector: { type: "string", alias: "l", description: "delete every object of the kind matching this label selector", valueHint: "SELECTOR" },
      all: { type: "boolean", description: "delete every object of the kind in the namespace" },
      "grace-period": { type: "string", description: "seconds a pod gets to stop (0 = at once; -1 = its own setting)", valueHint: "N" },
      cascade: { type: "string", description: "dependents: background (default), foreground or orphan", valueHint: "MODE" },
      "ignore-not-found": { type: "boolean", description: "a missing object is not an error" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args, rawArgs }) {
      const { io } = session;
      const files = flagValues(rawArgs, "filename", "f");
      const positionals = args._.map(String);
      const options = { propagationPolicy: parseCascade(args.cascade), gracePeriodSeconds: parseGracePeriod(args["grace-period"]) };
      let victims: Victim[] = [];
      let kindForSelector: Kind | undefined;
      let failed = false;
      if (files.length > 0) {
        if (positionals.length) throw new CliError("give either -f or KIND NAME…, not both");
        const fromFiles = await victimsFromFiles(files, args.namespace, io.readStdin);
        for (const f of fromFiles.failures) io.err(`Error: ${f}\n`);
        failed = fromFiles.failures.length > 0;
        if (failed && fromFiles.victims.length === 0) throw new AlreadyReported();
        victims = fromFiles.victims;
      } else if (positionals.length === 0) {
        throw new CliError("say what to delete: KIND NAME…, KIND/NAME…, -f FILE, or KIND -l SELECTOR");
      } else if (positionals[0].includes("/")) {
        for (const p of positionals) {
          const [k, name] = p.split("/");
          if (!name) throw new CliError(`"${p}": use KIND/NAME for every argument`);
          const kind = resolveKind(k);
          victims.push({ kind, name, namespace: kind.namespaced ? namespaceOf(args) : "" });
        }
      } else {
        const kind = resolveKind(positionals[0]);
        const names = positionals.slice(1);
        if (names.length && (args.selector || args.all)) throw new CliError("give names or a selector (-l / --all), not both");
        if (!names.length && !args.selector && !args.all) {
          throw new CliError(`which ${kind.plural}? give names, -l SELECTOR, or --all`);
        }
        if (names.length) victims = names.map((name) => ({ kind, name, namespace: kind.namespaced ? namespaceOf(args) : "" }));
        else kindForSelector = kind;
      }
      const api = await connect(session, args);
      if (kindForSelector) {
        const ns = kindForSelector.namespaced ? namespaceOf(args) : "";
        const { items } = await listAllPages(api.client(kindForSelector), ns, { labelSelector: args.selector ?? "" });
        victims = items.map((o) => ({ kind: kindForSelector, name: o.metadata!.name, namespace: o.metadata!.namespace }));
        if (victims.length === 0) io.err(kindForSelector.namespaced ? `No resources found in ${ns} namespace.\n` : "No resources found\n");
      }
      for (const v of victims) {
        try {
          await api.client(v.kind).delete(v.namespace, v.name, options);
          io.out(`${resourceRef(v.kind)} "${v.name}" deleted\n`);
        } catch (err) {
          if (isUnreachable(err)) throw err;
          if (args["ignore-not-found"] && err instanceof ConnectError && err.code === Code.NotFound) continue;
          io.err(`Error: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}
