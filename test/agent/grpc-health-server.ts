// A real grpc.health.v1 server for the gRPC probe test, run by the test inside a pod's network
// namespace (`ip netns exec <netns> node grpc-health-server.ts <port>`): the test image has none.
// Stdin lines "<service|-> <STATUS>" set a service's status ("-" is the server as a whole);
// it prints "listening" once bound, and "set" after each change.
import * as grpc from "@grpc/grpc-js";
import { createInterface } from "node:readline";
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from "../../internal/agent/grpc-health.ts";

const STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2 } as Record<string, number>;
const statuses = new Map<string, number>();

// The request is a HealthCheckRequest {service = 1}; its encoder's inverse, by hand. An object:
// grpc-js's server takes a falsy request ("") for a missing one.
function decodeRequest(buf: Buffer): { service: string } {
  if (buf.length === 0) return { service: "" };
  // 0x0a, length (one byte for the short names of the test), name
  return { service: buf.subarray(2, 2 + buf[1]!).toString("utf8") };
}

function encodeResponse(status: number): Buffer {
  const out = status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]);
  if (decodeHealthCheckResponse(out) !== status) throw new Error("response encoding broken");
  return out;
}

const server = new grpc.Server();
server.addService(
  {
    Check: {
      path: "/grpc.health.v1.Health/Check",
      requestStream: false,
      responseStream: false,
      requestSerialize: (r: { service: string }) => encodeHealthCheckRequest(r.service),
      requestDeserialize: decodeRequest,
      responseSerialize: encodeResponse,
      responseDeserialize: decodeHealthCheckResponse,
    },
  },
  {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, number>, callback: grpc.sendUnaryData<number>) => {
      const status = statuses.get(call.request.service);
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: "unknown service" });
      else callback(null, status);
    },
  },
);
server.bindAsync(`0.0.0.0:${process.argv[2]}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  process.stdout.write("listening\n");
});
createInterface({ input: process.stdin }).on("line", (line) => {
  const [service, status] = line.trim().split(/\s+/);
  statuses.set(service === "-" ? "" : service!, STATUS[status!] ?? 0);
  process.stdout.write("set\n");
});
process.stdin.on("end", () => server.forceShutdown());
