// PodService.Log: the apiserver's proxy to a node agent's log service, so that users never dial
// a node (the agent's port accepts only the apiserver's client certificate).
//
//   PodService.Log(ns, name, …) ─► pod.spec.nodeName ─► Node: InternalIP + daemonEndpoints.kubeletEndpoint.port
//     ─► https://<ip>:<port> (mTLS, kubeletClient) ─► AgentService.Logs ─► chunks streamed back
//
// One HTTP/2 connection per agent address, reused across calls and closed when idle. Chunks are
// passed on as the client takes them: a reader that falls behind stops the agent (at most the
// transport's read-ahead queue and HTTP/2's flow-control windows are held here, per call), and
// the client's cancel cancels the agent call.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { randomUUID } from "node:crypto";
import net from "node:net";
import type { Logger } from "pino";
import { AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { PodServiceLogRequest } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../client/grpc-transport.ts";
import { invalid } from "./errors.ts";
import type { ResourceOps } from "./resources.ts";

/** What the apiserver dials agents with: its client certificate (the PKI's apiserver-client, CN system:apiserver) and the CA of the agents' serving certificates (PEM). */
export interface KubeletClientTls {
  cert: string;
  key: string;
  ca: string;
}

export interface PodLogsOptions {
  pods: ResourceOps;
  nodes: ResourceOps;
  /** The apiserver's client certificate toward agents and the CA their serving certificates come from; absent: Log fails. */
  kubeletClient?: KubeletClientTls;
  /** How long connecting to an agent (TCP + TLS) may take. Default 10 s. */
  connectTimeoutMs?: number;
  /** Each request proxied to an agent is logged with its requestId and the pod's uid. */
  log?: Logger;
}

export interface PodLogs {
  /** The PodService.Log handler (server streaming). */
  log(req: PodServiceLogRequest, ctx: LogCallContext): AsyncIterable<{ data: Uint8Array }>;
  /** Closes the connections to agents. */
  close(): void;
}

/** The call's context as the handler gets it: its signal, and its headers when known. */
export interface LogCallContext {
  signal: AbortSignal;
  requestHeader?: Headers;
}

/** Carries a request's correlation id from the client (if it sent one) through the apiserver to the agent. */
export const REQUEST_ID_HEADER = "x-request-id";

/** The client's x-request-id when it is a sane token, else a new one. */
function requestIdOf(ctx: LogCallContext): string {
  const given = ctx.requestHeader?.get(REQUEST_ID_HEADER) ?? "";
  return /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

/** Connections kept to distinct agent addresses; the oldest goes first beyond this. */
const MAX_AGENT_CONNECTIONS = 1024;

/** The agent's URL from the Node's status: InternalIP (else ExternalIP) and the agent's port. */
export function agentUrl(node: Node): string {
  const name = node.metadata?.name ?? "";
  const addresses = node.status?.addresses ?? [];
  const ip = (addresses.find((a) => a.type === "InternalIP") ?? addresses.find((a) => a.type === "ExternalIP"))?.address;
  if (!ip) throw new ConnectError(`node "${name}" has no InternalIP address in its status: has its agent registered it yet?`, Code.FailedPrecondition);
  const port = node.status?.daemonEndpoints?.kubeletEndpoint?.port ?? 0;
  if (port <= 0) throw new ConnectError(`node "${name}" reports no agent port (status.daemonEndpoints.kubeletEndpoint.port): has its agent started?`, Code.FailedPrecondition);
  return `https://${net.isIPv6(ip) ? `[${ip}]` : ip}:${port}`;
}

export function createPodLogs(opts: PodLogsOptions): PodLogs {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  const agents = new Map<string, { transport: GrpcTransport; client: Client<typeof AgentService> }>();

  function agentFor(url: string, tls: KubeletClientTls) {
    let a = agents.get(url);
    if (!a) {
      // Skiff's own gRPC transport: it stops reading a stream the caller does not keep up with
      // (connect-node's reads ahead without bound).
      const transport = createGrpcTransport({ baseUrl: url, tls, idleConnectionTimeoutMs: 60_000, pingIntervalMs: 30_000 });
      a = { transport, client: createClient(AgentService, transport) };
      agents.set(url, a);
      if (agents.size > MAX_AGENT_CONNECTIONS) forget(agents.keys().next().value!);
    }
    return a.client;
  }

  function forget(url: string): void {
    agents.get(url)?.transport.close();
    agents.delete(url);
  }

  async function* log(req: PodServiceLogRequest, ctx: LogCallContext): AsyncIterable<{ data: Uint8Array }> {
    const missing = [!req.namespace && "namespace", !req.name && "name"].filter(Boolean) as string[];
    if (missing.length) throw invalid("log request", missing.map((field) => ({ field, message: "required" })));
    const pod = (await opts.pods.get(req.namespace, req.name).catch((err) => {
      throw err instanceof ConnectError && err.code === Code.NotFound ? new ConnectError(`pod "${req.name}" not found in namespace "${req.namespace}"`, Code.NotFound) : err;
    })) as Pod;
    const nodeName = pod.spec?.nodeName ?? "";
    if (!nodeName) {
      throw new ConnectError(`pod "${req.name}" is not scheduled to a node yet (phase ${pod.status?.phase || "Pending"}): it has no logs`, Code.FailedPrecondition);
    }
    let node: Node;
    try {
      node = (await opts.nodes.get("", nodeName)) as Node;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) throw new ConnectError(`node "${nodeName}" of pod "${req.name}" not found`, Code.FailedPrecondition);
      throw err;
    }
    const url = agentUrl(node);
    if (!opts.kubeletClient) {
      throw new ConnectError("this apiserver has no client certificate for node agents: start it with --kubelet-client-certificate, --kubelet-client-key and --kubelet-certificate-authority", Code.FailedPrecondition);
    }
    const where = `the agent of node "${nodeName}" at ${url}`;
    try {
      await checkReachable(url, connectTimeoutMs, ctx.signal);
    } catch (err) {
      if (ctx.signal.aborted) throw new ConnectError("the client cancelled the call", Code.Canceled);
      throw new ConnectError(`cannot reach ${where}: ${(err as Error).message}`, Code.Unavailable);
    }
    const client = agentFor(url, opts.kubeletClient);
    const { name: _name, $typeName: _t, ...rest } = req;
    // One id for the request on both sides: the agent logs it beside the pod's uid.
    const requestId = requestIdOf(ctx);
    opts.log?.info({ requestId, podUid: pod.metadata?.uid, pod: `${req.namespace}/${req.name}`, node: nodeName, container: req.container, follow: req.follow }, "pod log request sent to the agent");
    try {
      for await (const chunk of client.logs({ ...rest, pod: req.name }, { signal: ctx.signal, headers: { [REQUEST_ID_HEADER]: requestId } })) yield { data: chunk.data };
    } catch (err) {
      // The client went away (nobody hears this), or the apiserver is shutting down: the client
      // must not take that for the end of the log.
      if (ctx.signal.aborted) throw ctx.signal.reason instanceof ConnectError ? ctx.signal.reason : new ConnectError("the call was cancelled", Code.Canceled);
      const e = ConnectError.from(err);
      // A connection that failed (refused TLS, reset): the transport makes a new one for the next
      // call. The agent's own answers (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT, …) pass as they are.
      if (e.code === Code.Unavailable) throw new ConnectError(`cannot reach ${where}: ${e.rawMessage}`, Code.Unavailable);
      throw new ConnectError(e.rawMessage, e.code);
    }
  }

  return {
    log,
    close() {
      for (const url of [...agents.keys()]) forget(url);
    },
  };
}

/**
 * Opens and closes a TCP connection to the agent, so that an address nobody answers on fails in
 * timeoutMs instead of hanging (the log stream itself has no time limit).
 */
function checkReachable(url: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname.replace(/^\[|\]$/g, ""), port: Number(port), signal });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer in ${timeoutMs / 1000}s`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
