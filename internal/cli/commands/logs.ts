// skiffctl logs POD [-c CONTAINER] [-f] [--tail N] [-p] [--since D | --since-time T] [--timestamps]
// [--limit-bytes N] [-n NS] — a container's output, through the apiserver: PodService.Log, which
// the apiserver authorizes (pods/log) and proxies to the pod's node agent. skiffctl never dials a
// node. Bytes are printed as they arrive; with -f the stream stays open until the container ends
// or Ctrl-C (exit 0), which cancels the call (and the apiserver's call to the agent).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { defineCommand } from "citty";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService } from "../../../gen/skiff/v1alpha1/pod_service_pb.js";
import { kindByName } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, serverArg } from "../context.ts";
import type { Session } from "../context.ts";
import { CliError, isUnreachable } from "../errors.ts";
import { checkOneSince, defaultContainer, parseLimitBytes, parseSince, parseSinceTime, parseTail, podName } from "../logs.ts";
import { strictFlags } from "./flags.ts";

/** The apiserver's messages about the connection to a node agent (they may name ECONNREFUSED and the like). */
const AGENT_TROUBLE = /^cannot reach the agent of node /;

export function logsCommand(session: Session) {
  return defineCommand({
    meta: { name: "logs", description: "Print a container's logs: logs POD [-c CONTAINER] [-f] [--tail N] [-p] [--since 5m | --since-time TIME] [--timestamps] [--limit-bytes N]" },
    setup: strictFlags,
    args: {
      pod: { type: "positional", description: "the pod (NAME or pod/NAME)", required: true },
      container: { type: "string", alias: "c", description: "the container (default: the only one, or the first)", valueHint: "NAME" },
      follow: { type: "boolean", alias: "f", description: "keep printing new output until the container ends or Ctrl-C" },
      tail: { type: "string", description: "only the last N lines (-1: all, the default)", valueHint: "N" },
      previous: { type: "boolean", alias: "p", description: "the previous (terminated) instance of the container" },
      since: { type: "string", description: "only lines written in the last DURATION, e.g. 30s, 5m, 1h (not with --since-time)", valueHint: "DURATION" },
      "since-time": { type: "string", description: "only lines written at or after this RFC 3339 time, e.g. 2024-05-01T10:00:00Z", valueHint: "TIME" },
      timestamps: { type: "boolean", description: "prefix each line with the RFC 3339 time it was written" },
      "limit-bytes": { type: "string", description: "stop after N bytes of output (0: no limit, the default)", valueHint: "N" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args }) {
      const { io } = session;
      const positionals = args._.map(String);
      if (positionals.length !== 1) throw new CliError("logs takes one pod: skiffctl logs POD [-c CONTAINER]");
      const name = podName(positionals[0]);
      const tailLines = parseTail(args.tail);
      checkOneSince(args.since, args["since-time"]);
      const sinceSeconds = parseSince(args.since);
      const sinceTime = parseSinceTime(args["since-time"]);
      const limitBytes = parseLimitBytes(args["limit-bytes"]);
      const ns = namespaceOf(args);
      const api = await connect(session, args);

      let container = args.container ?? "";
      if (container === "") {
        // The pod tells which container kubectl would pick (and whether to say so).
        let pod: Pod;
        try {
          pod = (await api.client(kindByName("Pod")!).get(ns, name)) as Pod;
        } catch (err) {
          if (err instanceof ConnectError && err.code === Code.NotFound) throw new CliError(`pod "${name}" not found in namespace "${ns}"`);
          throw err;
        }
        const picked = defaultContainer(pod);
        container = picked.name;
        if (picked.note) io.err(`${picked.note}\n`);
      }

      const client = createClient(PodService, api.transport);
      const decoder = new TextDecoder();
      try {
        const stream = client.log(
          { namespace: ns, name, container, follow: args.follow === true, previous: args.previous === true, tailLines, sinceSeconds, sinceTime, limitBytes, timestamps: args.timestamps === true },
          { signal: io.signal },
        );
        for await (const chunk of stream) io.out(decoder.decode(chunk.data, { stream: true }));
      } catch (err) {
        if (io.signal.aborted) return; // Ctrl-C ends a follow: not an error
        if (!(err instanceof ConnectError)) throw err;
        // The apiserver's own words (including why it could not reach the node's agent) as they
        // are; a failed connection to the apiserver itself gets the CLI's usual message.
        if (isUnreachable(err) && !AGENT_TROUBLE.test(err.rawMessage)) throw err;
        throw new CliError(err.rawMessage);
      } finally {
        const rest = decoder.decode();
        if (rest) io.out(rest);
      }
    },
  });
}
