// skiffctl's root command and its run loop: parse, dispatch, and turn every failure into one
// "Error: …" line on stderr with exit code 1 (never a stack trace).
import { defineCommand, renderUsage, runCommand, type CommandDef } from "citty";
import { stripVTControlCharacters } from "node:util";
import { applyCommand } from "./commands/apply.ts";
import { authCommand } from "./commands/auth.ts";
import { configCommand } from "./commands/config.ts";
import { createCommand } from "./commands/create.ts";
import { deleteCommand } from "./commands/delete.ts";
import { describeCommand } from "./commands/describe.ts";
import { editCommand } from "./commands/edit.ts";
import { getCommand } from "./commands/get.ts";
import { logsCommand } from "./commands/logs.ts";
import { cordonCommands } from "./commands/node.ts";
import { rolloutCommand } from "./commands/rollout.ts";
import { scaleCommand } from "./commands/scale.ts";
import { setCommand } from "./commands/set.ts";
import { serverArg, type CliIO, type Session } from "./context.ts";
import { AlreadyReported, formatError } from "./errors.ts";

export const VERSION = "0.1.0";

export function createRootCommand(session: Session): CommandDef<any> {
  return defineCommand({
    meta: { name: "skiffctl", version: VERSION, description: "Drive a Skiff cluster: apply manifests; get, describe, edit and delete objects; read logs; scale, update and roll back deployments; drain nodes" },
    args: { ...serverArg },
    setup({ args }) {
      session.rootFlags = args;
    },
    subCommands: {
      apply: applyCommand(session),
      create: createCommand(session),
      get: getCommand(session),
      describe: describeCommand(session),
      delete: deleteCommand(session),
      edit: editCommand(session),
      logs: logsCommand(session),
      scale: scaleCommand(session),
      set: setCommand(session),
      rollout: rolloutCommand(session),
      ...cordonCommands(session),
      config: configCommand(session),
      auth: authCommand(session),
    },
  });
}

const VALUE_FLAGS = new Set(["-n", "--namespace", ...Object.keys(serverArg).map((f) => `--${f}`)]);

const stripAnsi = (s: string) => stripVTControlCharacters(s).replace(/[ \t]+$/gm, "");

const subCommandsOf = async (cmd: CommandDef<any>) =>
  (await (typeof cmd.subCommands === "function" ? cmd.subCommands() : cmd.subCommands)) as Record<string, CommandDef<any>> | undefined;

/** The command the arguments name (for --help), its parent, and the names leading to it. */
async function commandFor(root: CommandDef<any>, argv: string[]): Promise<[CommandDef<any>, CommandDef<any> | undefined, string[]]> {
  let cmd = root;
  let parent: CommandDef<any> | undefined;
  const path: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (VALUE_FLAGS.has(a)) i++;
    if (a.startsWith("-")) continue;
    const subs = await subCommandsOf(cmd);
    if (!subs || !(a in subs)) break;
    parent = cmd;
    cmd = subs[a];
    path.push(a);
  }
  return [cmd, parent, path];
}

/** Runs skiffctl with these arguments; returns the exit code. */
export async function runSkiffctl(argv: string[], io: CliIO): Promise<number> {
  const session: Session = { io };
  const root = createRootCommand(session);
  const beforeDashes = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  if (argv.length === 0 || beforeDashes.includes("--help") || beforeDashes.includes("-h")) {
    const [cmd, parent, path] = await commandFor(root, argv);
    // The usage line names the whole command ("skiffctl rollout status"), not just its parent.
    const named = parent && path.length > 1 ? { ...parent, meta: { name: ["skiffctl", ...path.slice(0, -1)].join(" ") } } : parent;
    io.out(`${stripAnsi(await renderUsage(cmd, named))}\n`);
    return 0;
  }
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "version")) {
    io.out(`skiffctl ${VERSION}\n`);
    return 0;
  }
  try {
    await runCommand(root, { rawArgs: argv });
    await Promise.all(session.pending ?? []);
    return 0;
  } catch (err) {
    await Promise.all(session.pending ?? []);
    if (err instanceof AlreadyReported) return 1;
    if (err instanceof Error && err.name === "CLIError") {
      const [cmd, , path] = await commandFor(root, argv);
      const subs = Object.keys((await subCommandsOf(cmd)) ?? {});
      const msg = stripAnsi(err.message)
        .replace(/^Unknown command (.*)$/, `unknown command "$1"; commands: ${subs.join(", ")}`)
        .replace(/^No command specified\.$/, `say which: ${["skiffctl", ...path].join(" ")} ${subs.join("|")}`);
      io.err(`Error: ${msg}\nRun "${["skiffctl", ...path].join(" ")} --help" for usage.\n`);
      return 1;
    }
    io.err(`${formatError(err, session.servers ?? session.server ?? "the configured server", session.caFile)}\n`);
    return 1;
  }
}
