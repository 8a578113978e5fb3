// Logs across machines: the apiserver reads each pod's log from the agent of its node, at that
// node's InternalIP on the shared segment, over mutual TLS (never loopback), and a client that
// presents no apiserver certificate gets nothing from an agent's port.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { AgentService } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import { PodService } from "../../gen/skiff/v1alpha1/pod_service_pb.js";
import { testPki } from "../../internal/pki/testing.ts";
import { startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";

let c: MultiNodeCluster;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 2 });
});

afterAll(async () => {
  await c?.stop();
});

async function readLog(name: string): Promise<string> {
  let out = "";
  for await (const chunk of createClient(PodService, c.cp.transport).log({ namespace: "default", name })) out += Buffer.from(chunk.data).toString();
  return out;
}

it("reads the log of a pod on each node through the apiserver", async () => {
  for (const n of c.nodes) {
    await c.createPod(n, `talk-${n.index}`, { containers: [{ name: "app", command: ["sh", "-c", `echo hello from node ${n.index}; exec sleep 3600`] }] });
  }
  for (const n of c.nodes) {
    await c.waitForRunning(`talk-${n.index}`);
    expect(await waitFor(`the log of talk-${n.index}`, async () => ((await readLog(`talk-${n.index}`)) === `hello from node ${n.index}\n` ? true : undefined), 20_000)).toBe(true);
  }
});

it("an agent's port gives a caller without the apiserver's certificate nothing", async () => {
  const certs = await testPki();
  const n = c.nodes[0];
  const url = `https://${n.ip}:10250`;
  const someone = await certs.issueClient("admin", ["system:masters"]);
  try {
    for await (const _ of createClient(AgentService, createGrpcTransport({ baseUrl: url, nodeOptions: { ca: certs.ca.cert, ...someone } })).logs({ namespace: "default", pod: "talk-1" })) {
      throw new Error("the agent served a log to a caller that is not the apiserver");
    }
    throw new Error("expected PERMISSION_DENIED");
  } catch (err) {
    expect(ConnectError.from(err).code).toBe(Code.PermissionDenied);
  }
});
