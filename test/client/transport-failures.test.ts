// Skiff's gRPC client transport when the server answers with something that is not the response
// message: the call fails with INTERNAL saying so (before, the decode error was thrown inside the
// HTTP/2 data listener, an uncaught exception, and the call failed as "no response message"), and
// the transport keeps working for the next call.
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigMapService, ConfigMapServiceGetResponseSchema } from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { createGrpcTransport } from "../../internal/client/grpc-transport.ts";
import { configMap } from "../fixtures/objects.ts";
import { testPki, type TestPki } from "../harness/pki.ts";
import { LOOPBACK } from "../harness/ports.ts";

let server: http2.Http2SecureServer;
let url: string;
let pki: TestPki;
beforeAll(async () => {
  // Over TLS, as every Skiff connection is: the test PKI's apiserver certificate.
  pki = await testPki();
  // Answers "garbage" with bytes that are no protobuf message, anything else with a ConfigMap.
  server = http2.createSecureServer({ cert: pki.apiserver.cert, key: pki.apiserver.key });
  server.on("stream", (stream) => {
    let body = "";
    stream.on("data", (c: Buffer) => (body += c.subarray(5).toString("latin1")));
    stream.on("end", () => {
      const payload = body.includes("garbage") ? Buffer.from([0x0f, 0x00]) : Buffer.from(toBinary(ConfigMapServiceGetResponseSchema, create(ConfigMapServiceGetResponseSchema, { configMap: configMap("fine") })));
      const frame = Buffer.alloc(5 + payload.length);
      frame.writeUInt32BE(payload.length, 1);
      frame.set(payload, 5);
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  url = `https://${LOOPBACK}:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe("Skiff's gRPC transport, unary calls", () => {
  it("fails the call with INTERNAL when the response message does not decode, and serves the next call", async () => {
    const client = createClient(ConfigMapService, createGrpcTransport({ baseUrl: url, tls: { ca: pki.ca.cert } }));
    const err = await client.get({ namespace: "default", name: "garbage" }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code[(err as ConnectError).code], (err as ConnectError).rawMessage]).toEqual(["Internal", expect.stringMatching(/^cannot decode the response message/)]);
    expect((await client.get({ namespace: "default", name: "ok" })).configMap?.metadata?.name).toBe("fine");
  });
});
