// skiffctl config set-cluster | set-credentials | set-context | use-context | set-server | view |
// current — the config file ($SKIFF_CONFIG or ~/.skiff/config.yaml): which apiserver, and who we
// are to it, in kubeconfig's shape.
import { defineCommand } from "citty";
import { resolve } from "node:path";
import { checkServerUrl, configPath, currentEntries, loadConfig, resolveServer, saveConfig, upsert, type CliConfig } from "../config.ts";
import { CliError } from "../errors.ts";
import { serverArg, type Session } from "../context.ts";
import { toYaml } from "../printers/object.ts";
import { strictFlags } from "./flags.ts";

export function configCommand(session: Session) {
  const { io } = session;
  async function edit(change: (cfg: CliConfig) => CliConfig, done: string): Promise<void> {
    const path = configPath(io.env);
    await saveConfig(path, change(await loadConfig(path)));
    io.out(`${done} in ${path}\n`);
  }
  return defineCommand({
    meta: { name: "config", description: "Show or change skiffctl's config file ($SKIFF_CONFIG or ~/.skiff/config.yaml)" },
    subCommands: {
      "set-cluster": defineCommand({
        meta: { name: "set-cluster", description: "Add or change a cluster: its server and the CA that signed the server's certificate" },
        setup: strictFlags,
        args: {
          name: { type: "positional", description: "the cluster's name in the config", required: true },
          server: { type: "string", description: "e.g. https://10.0.0.1:6443", valueHint: "URL" },
          "certificate-authority": { type: "string", description: "CA file (the cluster's ca.crt)", valueHint: "FILE" },
        },
        async run({ args }) {
          await edit((cfg) => {
            const old = cfg.clusters?.find((c) => c.name === args.name)?.cluster ?? {};
            const cluster = { ...old };
            if (args.server) {
              cluster.server = checkServerUrl(args.server);
              delete cluster["known-servers"]; // learned from the old server's cluster
            }
            if (args["certificate-authority"]) cluster["certificate-authority"] = resolve(args["certificate-authority"]);
            return { ...cfg, clusters: upsert(cfg.clusters, { name: args.name, cluster }) };
          }, `cluster "${args.name}" set`);
        },
      }),
      "set-credentials": defineCommand({
        meta: { name: "set-credentials", description: "Add or change a user: a client certificate and key, or a token" },
        setup: strictFlags,
        args: {
          name: { type: "positional", description: "the user's name in the config", required: true },
          "client-certificate": { type: "string", description: "client certificate file", valueHint: "FILE" },
          "client-key": { type: "string", description: "its key file", valueHint: "FILE" },
          token: { type: "string", description: "a bearer token", valueHint: "TOKEN" },
        },
        async run({ args }) {
          await edit((cfg) => {
            const user = { ...(cfg.users?.find((u) => u.name === args.name)?.user ?? {}) };
            if (args["client-certificate"]) user["client-certificate"] = resolve(args["client-certificate"]);
            if (args["client-key"]) user["client-key"] = resolve(args["client-key"]);
            if (args.token) user.token = args.token;
            return { ...cfg, users: upsert(cfg.users, { name: args.name, user }) };
          }, `user "${args.name}" set`);
        },
      }),
      "set-context": defineCommand({
        meta: { name: "set-context", description: "Add or change a context: a cluster and a user" },
        setup: strictFlags,
        args: {
          name: { type: "positional", description: "the context's name", required: true },
          cluster: { type: "string", description: "a cluster of the config", valueHint: "NAME" },
          user: { type: "string", description: "a user of the config", valueHint: "NAME" },
        },
        async run({ args }) {
          await edit((cfg) => {
            const context = { ...(cfg.contexts?.find((c) => c.name === args.name)?.context ?? {}) };
            if (args.cluster) context.cluster = args.cluster;
            if (args.user) context.user = args.user;
            return { ...cfg, contexts: upsert(cfg.contexts, { name: args.name, context }) };
          }, `context "${args.name}" set`);
        },
      }),
      "use-context": defineCommand({
        meta: { name: "use-context", description: "Make a context the current one" },
        setup: strictFlags,
        args: { name: { type: "positional", description: "the context's name", required: true } },
        async run({ args }) {
          await edit((cfg) => {
            if (!cfg.contexts?.some((c) => c.name === args.name)) {
              throw new CliError(`no context "${args.name}"; contexts: ${(cfg.contexts ?? []).map((c) => c.name).join(", ") || "none (skiffctl config set-context)"}`);
            }
            return { ...cfg, "current-context": args.name };
          }, `switched to context "${args.name}"`);
        },
      }),
      "set-server": defineCommand({
        meta: { name: "set-server", description: "Save the apiserver URL in the config file (in the current context's cluster, if there is one)" },
        setup: strictFlags,
        args: { url: { type: "positional", description: "e.g. http://10.0.0.1:6443", required: true } },
        async run({ args }) {
          const path = configPath(io.env);
          const server = checkServerUrl(args.url);
          const cfg = await loadConfig(path);
          const { cluster } = currentEntries(cfg);
          await saveConfig(path, cluster ? { ...cfg, clusters: upsert(cfg.clusters, { name: cluster.name, cluster: { ...cluster.cluster, server, "known-servers": undefined } }) } : { ...cfg, server });
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
