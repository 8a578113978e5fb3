// skiffctl config set-server URL | view | current — the config file ($SKIFF_CONFIG or
// ~/.skiff/config.yaml) that says which apiserver to use.
import { defineCommand } from "citty";
import { checkServerUrl, configPath, loadConfig, resolveServer, saveConfig } from "../config.ts";
import { serverArg, type Session } from "../context.ts";
import { toYaml } from "../printers/object.ts";
import { strictFlags } from "./flags.ts";

export function configCommand(session: Session) {
  const { io } = session;
  return defineCommand({
    meta: { name: "config", description: "Show or change skiffctl's config file ($SKIFF_CONFIG or ~/.skiff/config.yaml)" },
    subCommands: {
      "set-server": defineCommand({
        meta: { name: "set-server", description: "Save the apiserver URL in the config file" },
        setup: strictFlags,
        args: { url: { type: "positional", description: "e.g. http://10.0.0.1:6443", required: true } },
        async run({ args }) {
          const path = configPath(io.env);
          const server = checkServerUrl(args.url);
          await saveConfig(path, { ...(await loadConfig(path)), server });
          io.out(`server set to ${server} in ${path}\n`);
        },
      }),
      view: defineCommand({
        meta: { name: "view", description: "Print the config file" },
        setup: strictFlags,
        async run() {
          const path = configPath(io.env);
          const cfg = await loadConfig(path);
          io.out(`# ${path}\n${Object.keys(cfg).length ? toYaml(cfg) : "{}\n"}`);
        },
      }),
      current: defineCommand({
        meta: { name: "current", description: "Print the apiserver URL skiffctl would use, and why" },
        setup: strictFlags,
        args: { ...serverArg },
        async run({ args }) {
          const { server, source } = await resolveServer(args.server || session.rootFlags?.server, io.env);
          const why = { flag: "--server", env: "$SKIFF_SERVER", config: configPath(io.env), default: "default" }[source];
          io.out(`${server}\n`);
          io.err(`(from ${why})\n`);
        },
      }),
    },
  });
}
