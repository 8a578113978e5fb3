// PodService.Log against an in-process apiserver and a stand-in agent on the real agent port
// (TLS, apiserver identity only) whose log service records what it was asked and when its call
// ended: the request reaches the pod's node, chunks and errors come back on both the gRPC and the
// Connect path, a client's cancel cancels the agent call, and a slow reader holds the agent back.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentServiceLogsResponseSchema, type AgentServiceLogsRequest } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { PodService, type PodServiceLogRequest } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { startAgentServer, type AgentServer } from "../agent/server.ts";
import { waitFor } from "../agent/testing.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { foreignCa, testPki } from "../pki/testing.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { agentUrl } from "./pod-logs.ts";
import { startApiServer, type ApiServer } from "./server.ts";

const CHUNK = 64 * 1024;

/** What the stand-in agent saw. */
const seen = { requests: [] as AgentServiceLogsRequest[], open: 0, ended: 0, cancelled: 0, flooded: 0 };

let agent: AgentServer;
let api: ApiServer;
let grpc: Transport;
let connect: Transport;

beforeAll(async () => {
  const pki = await testPki();
  agent = await startAgentServer({
    host: "127.0.0.1",
    port: 0,
    tls: await pki.agentServing("n1"),
    service: {
      async *logs(req, ctx) {
        seen.requests.push(req);
        seen.open++;
        try {
          if (req.container === "missing") throw new ConnectError(`container "missing" is not valid for pod "${req.pod}": choose one of: [app]`, Code.NotFound);
          if (req.container === "waiting") throw new ConnectError('container "waiting" in pod "web" is waiting to start: ContainerCreating', Code.FailedPrecondition);
          if (req.container === "flood") {
            // As fast as the reader lets it: counts what it got rid of.
            for (;;) {
              yield create(AgentServiceLogsResponseSchema, { data: new Uint8Array(CHUNK) });
              seen.flooded++;
            }
          }
          yield create(AgentServiceLogsResponseSchema, { data: Buffer.from(`${req.namespace}/${req.pod}/${req.container}\n`) });
          if (req.follow) {
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
            if (ctx.signal.aborted) seen.cancelled++;
          }
        } finally {
          seen.open--;
          seen.ended++;
        }
      },
    },
  });
  api = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, kubeletClient: pki.kubeletClient });
  grpc = createGrpcTransport({ baseUrl: api.url, nodeOptions: pki.adminNodeOptions });
  connect = createConnectTransport({ baseUrl: api.url, httpVersion: "2", nodeOptions: pki.adminNodeOptions });

  const nodes = createResourceClient<Node>(grpc, "Node");
  const node = async (name: string, port: number, address = "127.0.0.1") => {
    const n = await nodes.create(create(NodeSchema, { metadata: { name } }));
    n.status = create(NodeSchema, { status: { addresses: address ? [{ type: "InternalIP", address }] : [], daemonEndpoints: { kubeletEndpoint: { port } } } }).status;
    await nodes.updateStatus(n);
  };
  await node("n1", agent.port);
  await node("blank", agent.port, "");
  const pods = createResourceClient(grpc, "Pod");
  const pod = (name: string, nodeName: string) => pods.create(create(PodSchema, { metadata: { name, namespace: "default" }, spec: { nodeName, containers: [{ name: "app", image: "i" }] } }));
  await pod("web", "n1");
  await pod("pending", "");
  await pod("lost", "gone");
  await pod("nowhere", "blank");
});
afterAll(async () => {
  await api?.close();
  await agent?.close();
});

type LogInit = Partial<Omit<PodServiceLogRequest, "$typeName" | "$unknown">>;

async function read(transport: Transport, req: LogInit): Promise<string> {
  let out = "";
  for await (const c of createClient(PodService, transport).log({ namespace: "default", name: "web", ...req })) out += Buffer.from(c.data).toString();
  return out;
}

async function failure(transport: Transport, req: LogInit): Promise<ConnectError> {
  try {
    await read(transport, req);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("PodService.Log", () => {
  it.each([
    ["gRPC", () => grpc],
    ["Connect", () => connect],
  ])("streams the container's log from the pod's node agent (%s)", async (_path, transport) => {
    const before = seen.requests.length;
    expect(await read(transport(), { container: "app", tailLines: 5n, sinceSeconds: 60n, timestamps: true, limitBytes: 100n, previous: true })).toBe("default/web/app\n");
    const req = seen.requests[before];
    expect({ ns: req.namespace, pod: req.pod, tail: req.tailLines, since: req.sinceSeconds, ts: req.timestamps, limit: req.limitBytes, previous: req.previous }).toEqual({
      ns: "default",
      pod: "web",
      tail: 5n,
      since: 60n,
      ts: true,
      limit: 100n,
      previous: true,
    });
  });

  it.each([
    ["gRPC", () => grpc],
    ["Connect", () => connect],
  ])("passes the agent's errors on with their codes, and says why it cannot reach one (%s)", async (_path, transport) => {
    const t = transport();
    const cases: [LogInit, Code, string][] = [
      [{ container: "missing" }, Code.NotFound, 'container "missing" is not valid for pod "web": choose one of: [app]'],
      [{ container: "waiting" }, Code.FailedPrecondition, 'container "waiting" in pod "web" is waiting to start: ContainerCreating'],
      [{ name: "nope" }, Code.NotFound, 'pod "nope" not found in namespace "default"'],
      [{ name: "pending" }, Code.FailedPrecondition, 'pod "pending" is not scheduled to a node yet (phase Pending): it has no logs'],
      [{ name: "lost" }, Code.FailedPrecondition, 'node "gone" of pod "lost" not found'],
      [{ name: "nowhere" }, Code.FailedPrecondition, 'node "blank" has no InternalIP address in its status: has its agent registered it yet?'],
      [{ name: "" }, Code.InvalidArgument, "log request is invalid: name: required"],
    ];
    for (const [req, code, message] of cases) {
      const err = await failure(t, req);
      expect({ code: Code[err.code], message: err.rawMessage }).toEqual({ code: Code[code], message });
    }
  });

  it("follow ends when the client cancels, and so does the call to the agent", async () => {
    for (const transport of [grpc, connect]) {
      const cancelledBefore = seen.cancelled;
      const ac = new AbortController();
      const stream = createClient(PodService, transport).log({ namespace: "default", name: "web", container: "app", follow: true }, { signal: ac.signal });
      const it = stream[Symbol.asyncIterator]();
      expect(Buffer.from((await it.next()).value!.data).toString()).toBe("default/web/app\n");
      expect(seen.open).toBe(1);
      ac.abort();
      await expect(it.next()).rejects.toThrow();
      await waitFor("the agent's call cancelled", () => seen.cancelled === cancelledBefore + 1 && seen.open === 0);
    }
  });

  it("a reader that stops reading holds the agent back (no unbounded buffering in the apiserver)", async () => {
    const ac = new AbortController();
    const it = createClient(PodService, grpc).log({ namespace: "default", name: "web", container: "flood", follow: true }, { signal: ac.signal })[Symbol.asyncIterator]();
    await it.next();
    // The agent soon stops getting rid of chunks: flow control reached it.
    let last = -1;
    let still = 0;
    await waitFor("the agent held back", () => {
      still = seen.flooded === last ? still + 1 : 0;
      last = seen.flooded;
      return still >= 10;
    }, 20_000);
    // Flow-control windows and socket buffers on two hops, not the whole log.
    expect(seen.flooded * CHUNK).toBeLessThan(32 * 1024 * 1024);
    ac.abort();
    await waitFor("the flood's call ended", () => seen.open === 0);
  });
});

describe("PodService.Log without a way to the agent", () => {
  it("answers FAILED_PRECONDITION when the apiserver has no client certificate for agents", async () => {
    const pki = await testPki();
    const bare = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0 });
    try {
      const t = createGrpcTransport({ baseUrl: bare.url, nodeOptions: pki.adminNodeOptions });
      await createResourceClient(t, "Node").create(create(NodeSchema, { metadata: { name: "n1" }, status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: { kubeletEndpoint: { port: agent.port } } } }));
      const n = await createResourceClient<Node>(t, "Node").get("", "n1");
      n.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: { kubeletEndpoint: { port: agent.port } } } }).status;
      await createResourceClient<Node>(t, "Node").updateStatus(n);
      await createResourceClient(t, "Pod").create(create(PodSchema, { metadata: { name: "web", namespace: "default" }, spec: { nodeName: "n1", containers: [{ name: "app", image: "i" }] } }));
      const err = await failure(t, {});
      expect(err.code).toBe(Code.FailedPrecondition);
      expect(err.rawMessage).toMatch(/no client certificate for node agents: start it with --kubelet-client-certificate/);
    } finally {
      await bare.close();
    }
  });

  it("answers UNAVAILABLE when the agent's certificate is not from the CA it trusts", async () => {
    const other = await foreignCa();
    const pki = await testPki();
    const wary = await startApiServer({ tls: pki.serving, store: createMemoryStore(), port: 0, kubeletClient: { ...(await other.client("system:apiserver")), ca: other.ca.cert } });
    try {
      const t = createGrpcTransport({ baseUrl: wary.url, nodeOptions: pki.adminNodeOptions });
      const nodes = createResourceClient<Node>(t, "Node");
      const n = await nodes.create(create(NodeSchema, { metadata: { name: "n1" } }));
      n.status = create(NodeSchema, { status: { addresses: [{ type: "InternalIP", address: "127.0.0.1" }], daemonEndpoints: { kubeletEndpoint: { port: agent.port } } } }).status;
      await nodes.updateStatus(n);
      await createResourceClient(t, "Pod").create(create(PodSchema, { metadata: { name: "web", namespace: "default" }, spec: { nodeName: "n1", containers: [{ name: "app", image: "i" }] } }));
      const err = await failure(t, {});
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(new RegExp(`^cannot reach the agent of node "n1" at https://127\\.0\\.0\\.1:${agent.port}: .*(certificate|verify)`, "i"));
    } finally {
      await wary.close();
    }
  });
});

describe("agentUrl", () => {
  it("finds the agent from the Node's status", () => {
    const node = (addresses: { type: string; address: string }[], port: number) =>
      create(NodeSchema, { metadata: { name: "n1" }, status: { addresses, daemonEndpoints: { kubeletEndpoint: { port } } } });
    expect(agentUrl(node([{ type: "Hostname", address: "h" }, { type: "InternalIP", address: "10.0.0.5" }], 10250))).toBe("https://10.0.0.5:10250");
    expect(agentUrl(node([{ type: "InternalIP", address: "fd00::5" }], 10250))).toBe("https://[fd00::5]:10250");
    expect(agentUrl(node([{ type: "ExternalIP", address: "192.0.2.1" }], 1))).toBe("https://192.0.2.1:1");
    expect(() => agentUrl(node([{ type: "InternalIP", address: "10.0.0.5" }], 0))).toThrow('node "n1" reports no agent port');
  });
});
