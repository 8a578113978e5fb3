// skiffctl apply -f FILE|DIR|- — create or update every object in the manifests.
import { defineCommand } from "citty";
import { applyObject } from "../apply.ts";
import { connect, namespaceArgs, serverArg, type Session } from "../context.ts";
import { AlreadyReported, CliError, describeError, isUnreachable } from "../errors.ts";
import { decodeDocuments, ManifestError, namespacesFirst, targetNamespace } from "../manifest.ts";
import { readManifests } from "../manifest-source.ts";
import { resourceRef } from "../printers/object.ts";
import { flagValues, strictFlags } from "./flags.ts";

export const filenameArg = {
  filename: { type: "string", alias: "f", description: "manifest file, directory (its .yaml/.yml/.json files) or - for stdin; repeatable", valueHint: "FILE" },
} as const;

export function applyCommand(session: Session) {
  return defineCommand({
    meta: { name: "apply", description: "Create or update objects from Kubernetes-style manifests" },
    setup: strictFlags,
    args: {
      ...filenameArg,
      "dry-run": { type: "boolean", description: "let the server check everything but store nothing" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args, rawArgs }) {
      const files = flagValues(rawArgs, "filename", "f");
      if (files.length === 0) throw new CliError("apply needs -f FILE, -f DIR or -f -");
      const { io } = session;
      const docs = await readManifests(files, { readStdin: io.readStdin });
      if (docs.length === 0) throw new CliError(`no objects in ${files.join(", ")}`);
      // Like kubectl: a document that cannot be applied is reported, the others still are.
      const decoded = decodeDocuments(docs);
      const failures = [...decoded.failures];
      const objs = namespacesFirst(decoded.objects).filter((o) => {
        try {
          o.object.metadata!.namespace = targetNamespace(o.kind, o.object.metadata!.namespace, args.namespace, o.where);
          return true;
        } catch (err) {
          if (!(err instanceof ManifestError)) throw err;
          failures.push(err.message);
          return false;
        }
      });
      for (const f of failures) io.err(`Error: ${f}\n`);
      let failed = failures.length > 0;
      if (objs.length === 0) throw new AlreadyReported();
      const api = await connect(session, args);
      const dry = args["dry-run"] === true;
      for (const o of objs) {
        try {
          const { result } = await applyObject(api.client(o.kind), o.object, { dryRun: dry });
          io.out(`${resourceRef(o.kind)}/${o.object.metadata!.name} ${result}${dry ? " (dry run)" : ""}\n`);
        } catch (err) {
          if (isUnreachable(err)) throw err;
          io.err(`Error: ${o.where}: ${describeError(err, api.servers)}\n`);
          failed = true;
        }
      }
      if (failed) throw new AlreadyReported();
    },
  });
}
