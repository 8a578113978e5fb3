// The agent's port serves the apiserver only: TLS with a client certificate from the configured
// CA, and of that CA only the apiserver's identity (CN system:apiserver).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService, AgentServiceLogsResponseSchema } from "../../gen/skiff/v1alpha1/agent_service_pb.js";
import { foreignCa, testPki, type TestPki } from "../pki/testing.ts";
import { startAgentServer, type AgentServer } from "./server.ts";

let certs: TestPki;
let server: AgentServer;
let url: string;

beforeAll(async () => {
  certs = await testPki();
  server = await startAgentServer({
    host: "127.0.0.1",
    port: 0,
    tls: await certs.agentServing("node-1"),
    service: {
      async *logs(req) {
        yield create(AgentServiceLogsResponseSchema, { data: Buffer.from(`log of ${req.namespace}/${req.pod}\n`) });
      },
    },
  });
  url = `https://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server?.close();
});

type Tls = { ca: string; cert?: string; key?: string };

async function readLogs(transport: Transport): Promise<string> {
  let out = "";
  for await (const c of createClient(AgentService, transport).logs({ namespace: "default", pod: "web" })) out += Buffer.from(c.data).toString();
  return out;
}

async function failure(transport: Transport): Promise<ConnectError> {
  try {
    await readLogs(transport);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

const grpc = (tls: Tls) => createGrpcTransport({ baseUrl: url, nodeOptions: tls });

function healthz(tls: Tls): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, tls);
    session.on("error", reject);
    const req = session.request({ ":path": "/healthz" });
    let body = "";
    req.on("response", (h) => {
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        session.close();
        resolve({ status: Number(h[":status"]), body });
      });
    });
    req.on("error", reject);
    // A connection the server ends after the handshake closes the stream without an answer.
    req.on("close", () => {
      session.destroy();
      reject(new Error(`no answer (stream closed with code ${req.rstCode})`));
    });
    req.end();
  });
}

describe("the agent's port", () => {
  it("serves the apiserver's client certificate, over gRPC and Connect", async () => {
    const tls = certs.kubeletClient;
    expect(await readLogs(grpc(tls))).toBe("log of default/web\n");
    expect(await readLogs(createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions: tls }))).toBe("log of default/web\n");
    expect(await healthz(tls)).toEqual({ status: 200, body: "ok\n" });
  });

  it("refuses another identity from the same CA with PERMISSION_DENIED (and /healthz with 403)", async () => {
    const admin = await certs.issueClient("admin", ["system:masters"]);
    const err = await failure(grpc({ ca: certs.ca.cert, ...admin }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe('this port serves the apiserver only (client certificate CN system:apiserver), not "admin": read logs through the apiserver (skiffctl logs)');
    const node = await certs.issueClient("system:node:worker-1");
    expect((await failure(createConnectTransport({ baseUrl: url, httpVersion: "2", nodeOptions: { ca: certs.ca.cert, ...node } }))).code).toBe(Code.PermissionDenied);
    const health = await healthz({ ca: certs.ca.cert, ...admin });
    expect(health.status).toBe(403);
  });

  it("refuses a client without a certificate, or with one from another CA, in the TLS handshake", async () => {
    // Connection-level failures: how the client names them depends on when it notices (TLS 1.3
    // finishes the client's side of the handshake before the server has checked its certificate).
    const CONNECTION_FAILED = [Code.Unavailable, Code.Internal, Code.Canceled];
    const none = await failure(grpc({ ca: certs.ca.cert }));
    expect(CONNECTION_FAILED).toContain(none.code);
    expect(none.rawMessage).toMatch(/certificate required/);
    await expect(healthz({ ca: certs.ca.cert })).rejects.toThrow(/certificate required|no answer/);

    // A certificate that even says system:apiserver, from a CA the agent does not trust.
    const foreign = await (await foreignCa()).client("system:apiserver");
    const impostor = await failure(grpc({ ca: certs.ca.cert, cert: foreign.cert, key: foreign.key }));
    expect(CONNECTION_FAILED).toContain(impostor.code);
    await expect(healthz({ ca: certs.ca.cert, cert: foreign.cert, key: foreign.key })).rejects.toThrow(/unknown ca|no answer/i);
  });

  it("speaks no plaintext HTTP/2", async () => {
    const err = await failure(createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    expect([Code.Unavailable, Code.Internal, Code.Canceled]).toContain(err.code);
  });
});
