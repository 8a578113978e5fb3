// The reproductions with an independent gRPC implementation (@grpc/grpc-js) as client:
// an 8,000-character name is NOT_FOUND (before, the whole name came back in the status message
// and grpcio refused it as oversized metadata), and a 50 MB request is RESOURCE_EXHAUSTED (before,
// a stream reset); the connection serves the next call.
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigMapServiceCreateRequestSchema,
  ConfigMapServiceCreateResponseSchema,
  ConfigMapServiceGetRequestSchema,
  ConfigMapServiceGetResponseSchema,
} from "../../gen/skiff/v1alpha1/config_map_service_pb.js";
import { configMap } from "../fixtures/objects.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";

let cp: ControlPlane;
let client: grpc.Client;
beforeAll(async () => {
  cp = await startControlPlane();
  // As the admin: grpc-js over TLS with the admin's client certificate.
  const admin = grpc.credentials.createSsl(Buffer.from(cp.pki.ca.cert), Buffer.from(cp.pki.admin.key), Buffer.from(cp.pki.admin.cert));
  client = new grpc.Client(cp.server.url.replace("https://", ""), admin);
}, 60_000);
afterAll(async () => {
  client?.close();
  await cp?.stop();
});

/** A unary call through grpc-js, messages encoded with protobuf-es: its status code and details. */
function unary<I extends DescMessage, O extends DescMessage>(method: string, input: I, output: O, req: MessageShape<I>): Promise<{ code: grpc.status; details: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/skiff.v1alpha1.ConfigMapService/${method}`,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      req,
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: "" }),
    );
  });
}

describe("a grpc-js client", () => {
  it("gets NOT_FOUND with a short message for an 8,000-character name", async () => {
    const res = await unary("Get", ConfigMapServiceGetRequestSchema, ConfigMapServiceGetResponseSchema, create(ConfigMapServiceGetRequestSchema, { namespace: "default", name: "n".repeat(8000) }));
    expect(grpc.status[res.code]).toBe("NOT_FOUND");
    expect(res.details).toBe(`configmap "${"n".repeat(64)}…(8000 characters)" not found`);
  });

  it("gets RESOURCE_EXHAUSTED for a 50 MB request, and the next call on the connection works", async () => {
    const huge = create(ConfigMapServiceCreateRequestSchema, { configMap: configMap("huge", { big: "x".repeat(50_000_000) }) });
    const res = await unary("Create", ConfigMapServiceCreateRequestSchema, ConfigMapServiceCreateResponseSchema, huge);
    expect([grpc.status[res.code], res.details]).toEqual(["RESOURCE_EXHAUSTED", "request message larger than 3145728 bytes"]);
    const next = await unary("Create", ConfigMapServiceCreateRequestSchema, ConfigMapServiceCreateResponseSchema, create(ConfigMapServiceCreateRequestSchema, { configMap: configMap("after-huge") }));
    expect(grpc.status[next.code]).toBe("OK");
  });
});
