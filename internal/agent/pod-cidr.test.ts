import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { NodeSpecSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { startApiServer, type ApiServer } from "../apiserver/server.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createMemoryStore } from "../storage/memory.ts";
import { allocatedPodCidr } from "./pod-cidr.ts";
import { waitFor } from "./testing.ts";
import { loadedTestPki, testPki } from "../pki/testing.ts";

let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("allocatedPodCidr", () => {
  it("registers the Node when missing and returns the range once one is allocated to it", async () => {
    server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0 });
    const nodes = createResourceClient<Node>(createGrpcTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: server.url }), "Node");
    const result = allocatedPodCidr({ client: nodes, nodeName: "n1", log: pino({ level: "silent" }), pollMs: 20 });
    const node = await waitFor("the Node registered", () => nodes.get("", "n1").catch(() => undefined));
    expect(node.metadata?.labels["kubernetes.io/hostname"]).toBe("n1");
    let settled = false;
    void result.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false); // no range yet: still waiting

    // What the node lifecycle controller does.
    node.spec = create(NodeSpecSchema, { podCidr: "10.244.3.0/24", podCidrs: ["10.244.3.0/24"] });
    await nodes.update(node);
    expect(await result).toBe("10.244.3.0/24");
  });

  it("stops waiting when aborted", async () => {
    server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0 });
    const nodes = createResourceClient<Node>(createGrpcTransport({ nodeOptions: loadedTestPki().adminNodeOptions, baseUrl: server.url }), "Node");
    const stop = new AbortController();
    const result = allocatedPodCidr({ client: nodes, nodeName: "n1", log: pino({ level: "silent" }), pollMs: 20, signal: stop.signal });
    setTimeout(() => stop.abort(), 50);
    await expect(result).rejects.toThrow("stopped while waiting for a pod CIDR");
  });
});
