// skiffctl edit TYPE/NAME | TYPE NAME [-o yaml|json] — opens the object in $KUBE_EDITOR, $EDITOR or
// vi and writes back what is saved (the loop is in ../edit.ts; every kind of the registry alike).
import { defineCommand } from "citty";
import { connect, namespaceArgs, namespaceOf, serverArg, type Session } from "../context.ts";
import { editObject, editorCommand, runEditor, type EditFormat } from "../edit.ts";
import { CliError } from "../errors.ts";
import { parseTargets } from "./get.ts";
import { strictFlags } from "./flags.ts";

const USAGE = "skiffctl edit TYPE/NAME or skiffctl edit TYPE NAME, e.g. skiffctl edit configmap web";

export function editCommand(session: Session) {
  return defineCommand({
    meta: { name: "edit", description: "Edit an object in your editor ($KUBE_EDITOR, $EDITOR or vi): edit TYPE/NAME or edit TYPE NAME" },
    setup: strictFlags,
    args: {
      type: { type: "positional", description: "TYPE/NAME, or TYPE followed by NAME", required: false },
      output: { type: "string", alias: "o", description: "the format to edit in: yaml (default) or json", valueHint: "FORMAT" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const { io } = session;
      const format = (args.output ?? "yaml") as EditFormat;
      if (format !== "yaml" && format !== "json") throw new CliError(`unknown output format "${args.output}": use yaml or json`);
      const positionals = args._.map(String);
      if (positionals.length === 0) throw new CliError(`which object? ${USAGE}`);
      const targets = parseTargets(positionals);
      if (targets.length !== 1 || targets[0].names.length !== 1) throw new CliError(`edit takes exactly one object: ${USAGE}`);
      const { kind, names } = targets[0];
      const api = await connect(session, args);
      const command = editorCommand(io.env);
      const outcome = await editObject({
        client: api.client(kind),
        namespace: kind.namespaced ? namespaceOf(args) : "",
        name: names[0],
        format,
        edit: (file) => runEditor(command, file, io.env),
      });
      if (outcome.result === "edited") io.out(`${outcome.message}\n`);
      else io.err(`${outcome.message}\n`);
    },
  });
}
