// skiffctl logs POD [-c CONTAINER] [-f] [--tail N] [-p] [--since D | --since-time T] [--timestamps]
// [--limit-bytes N] [-n NS] — a container's output, read from
// the node agent directly (not through the apiserver): the pod's node → the Node's InternalIP and
// agent port → AgentService.Logs over gRPC (h2c). Bytes are printed as they arrive; with -f the
// stream stays open until the container ends or Ctrl-C (exit 0).
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { defineCommand } from "citty";
import { AgentService } from "../../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { kindByName } from "../../api/registry.ts";
import { connect, namespaceArgs, namespaceOf, serverArg, type Api, type Session } from "../context.ts";
import { CliError, isUnreachable } from "../errors.ts";
import { agentUrl, checkOneSince, checkReachable, defaultContainer, parseLimitBytes, parseSince, parseSinceTime, parseTail, podName } from "../logs.ts";
import { strictFlags } from "./flags.ts";

/** How long connecting to the agent may take (the stream itself has no limit). */
const CONNECT_TIMEOUT_MS = 10_000;

async function getOrExplain<T>(what: () => Promise<T>, notFound: string): Promise<T> {
  try {
    return await what();
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) throw new CliError(notFound);
    throw err;
  }
}

/** The pod, its node, and the URL of that node's agent. */
async function locate(api: Api, ns: string, name: string): Promise<{ pod: Pod; node: string; url: string }> {
  const pod = (await getOrExplain(() => api.client(kindByName("Pod")!).get(ns, name), `pod "${name}" not found in namespace "${ns}"`)) as Pod;
  const nodeName = pod.spec?.nodeName ?? "";
  if (!nodeName) {
    throw new CliError(`pod "${name}" is not scheduled to a node yet (phase ${pod.status?.phase || "Pending"}): it has no logs`);
  }
  const node = (await getOrExplain(
    () => api.client(kindByName("Node")!).get("", nodeName),
    `node "${nodeName}" of pod "${name}" not found`,
  )) as Node;
  return { pod, node: nodeName, url: agentUrl(node) };
}

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
      const { pod, node, url } = await locate(api, ns, name);

      let container = args.container ?? "";
      if (container === "") {
        const picked = defaultContainer(pod);
        container = picked.name;
        if (picked.note) io.err(`${picked.note}\n`);
      }

      const where = `the agent of node "${node}" at ${url}`;
      try {
        await checkReachable(url, CONNECT_TIMEOUT_MS, io.signal);
      } catch (err) {
        if (io.signal.aborted) return;
        throw new CliError(`cannot reach ${where}: ${(err as Error).message}`);
      }
      const client = createClient(AgentService, createGrpcTransport({ baseUrl: url }));
      const decoder = new TextDecoder();
      try {
        const stream = client.logs(
          { namespace: ns, pod: name, container, follow: args.follow === true, previous: args.previous === true, tailLines, sinceSeconds, sinceTime, limitBytes, timestamps: args.timestamps === true },
          { signal: io.signal },
        );
        for await (const chunk of stream) io.out(decoder.decode(chunk.data, { stream: true }));
      } catch (err) {
        if (io.signal.aborted) return; // Ctrl-C ends a follow: not an error
        if (!(err instanceof ConnectError)) throw err;
        if (isUnreachable(err) || err.code === Code.Unavailable) throw new CliError(`lost or no connection to ${where}: ${err.rawMessage}`);
        throw new CliError(err.rawMessage);
      } finally {
        const rest = decoder.decode();
        if (rest) io.out(rest);
      }
    },
  });
}
