// `skiff server`: a control-plane machine (etcd member, apiserver, scheduler, controller-manager,
// and its node agent unless --disable-agent). The first with --cluster-init; more join with
// --server URL --token K10… (role server); `skiff server remove NAME` takes one out.
import { createClient } from "@connectrpc/connect";
import { defineCommand } from "citty";
import { isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { ServerService } from "../../gen/skiff/v1alpha1/server_service_pb.js";
import { parsePortRange, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { resolveConnection } from "../cli/connection.ts";
import { createServerTransport } from "../client/transport.ts";
import { JOIN_TOKEN_PREFIX } from "./agent-join.ts";
import { createLogger } from "../log/log.ts";
import { parseListen } from "./apiserver.ts";
import { guarded } from "./guard.ts";
import { serverOnlyArgs, sharedServerArgs } from "./server-flags.ts";
import { checkAgentFlags } from "./server-agent.ts";
import { runServer } from "./server-run.ts";

/** The machine's first non-loopback IPv4 address: where other servers reach this one by default. */
function firstIPv4(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
}

const removeCommand = defineCommand({
  meta: { name: "remove", description: "Remove a server from the control plane: its etcd member (that etcd stops) and its Node" },
  args: {
    name: { type: "positional", description: "The server's name (its node name)", required: true },
    kubeconfig: { type: "string", description: "skiffctl's config file (default: $SKIFF_CONFIG or ~/.skiff/config.yaml), its current context", valueHint: "FILE" },
    server: { type: "string", description: "An apiserver URL (overrides the config's); not the one being removed", valueHint: "URL" },
    "certificate-authority": { type: "string", description: "CA file of the apiserver's certificate", valueHint: "FILE" },
    "client-certificate": { type: "string", description: "An admin's client certificate", valueHint: "FILE" },
    "client-key": { type: "string", description: "Its key", valueHint: "FILE" },
  },
  run: guarded(async ({ args }) => {
    const c = await resolveConnection(args);
    const transport = createServerTransport(c.server, c.credentials);
    try {
      const res = await createClient(ServerService, transport).removeServer({ serverName: args.name }, { timeoutMs: 30_000 });
      console.log(`server ${args.name} removed; etcd members now: ${res.members.map((m) => m.name || "(not started)").sort().join(", ")}`);
      if (res.members.length === 2) console.log("warning: 2 servers left: etcd needs both for quorum; add a third");
    } finally {
      transport.close();
    }
    process.exit(0);
  }),
});

export const serverCommand = defineCommand({
  meta: { name: "server", description: "Run a control-plane server: etcd member, apiserver, scheduler, controller-manager and node agent" },
  args: { ...serverOnlyArgs, ...sharedServerArgs },
  subCommands: { remove: removeCommand },
  run: guarded(async ({ args, rawArgs }) => {
    // citty runs this too after a subcommand: `remove` has done its work (and exited).
    if (rawArgs[0] === "remove") return;
    const log = createLogger("skiff", args["log-level"]);
    const joining = Boolean(args.server || args.token);
    if (args["cluster-init"] && joining) throw new Error("--cluster-init starts a new cluster; --server/--token join one: give one or the other");
    if (joining && (!args.server || !args.token)) throw new Error("joining needs both --server https://HOST:PORT and --token K10… (skiff token create --role server)");
    if (args.token && !args.token.startsWith(JOIN_TOKEN_PREFIX)) throw new Error(`--token must be a join token (${JOIN_TOKEN_PREFIX}…) of role server`);
    const dataDir = resolve(args["data-dir"]);
    const advertise = args["advertise-address"] || firstIPv4();
    if (!advertise || isIP(advertise) !== 4) throw new Error(`--advertise-address must be this machine's IPv4 address (other servers dial its etcd member there)${advertise ? `, got "${advertise}"` : ": none found"}`);
    const listen = parseListen(args.listen ?? `${advertise}:6443`);
    parseServiceCidr(args["service-cluster-ip-range"]);
    parsePortRange(args["service-node-port-range"]);
    if (!args["disable-agent"]) checkAgentFlags(args);
    const nodeName = args["node-name"] || hostname().toLowerCase();
    // Neither --cluster-init nor a join: a restart of a server whose data dir holds its member.
    if (!args["cluster-init"] && !joining && !existsSync(join(dataDir, "etcd", "member"))) {
      throw new Error(`${dataDir} holds no etcd member: start a new cluster with --cluster-init, or join one with --server URL --token K10…`);
    }
    await runServer({
      flags: { ...args, "advertise-address": advertise },
      dataDir,
      nodeName,
      listen,
      memberAddress: advertise,
      memberName: nodeName,
      peerTls: true,
      join: joining ? { server: args.server!, token: args.token! } : undefined,
      agent: args["disable-agent"] ? undefined : {},
      log,
    });
  }),
});
