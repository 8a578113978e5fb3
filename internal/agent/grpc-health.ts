// The gRPC probe: one grpc.health.v1.Health/Check call to the pod's IP, in plain text (no TLS, as
// the kubelet's), bounded by the probe's timeout. The two messages are tiny, so they are encoded
// by hand rather than through generated code:
//   HealthCheckRequest  { string service = 1 }
//   HealthCheckResponse { ServingStatus status = 1 }  UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
import * as grpc from "@grpc/grpc-js";
import type { ProbeOutcome } from "./probe-check.ts";

const CHECK_PATH = "/grpc.health.v1.Health/Check";
const STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** The service is always written, even "": an empty message body is not sent by every stack. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, "utf8");
  return Buffer.concat([Buffer.from([0x0a, ...varint(name.length)]), name]);
}

/** The status field of a HealthCheckResponse (0 when absent); other fields are skipped. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let i = 0;
  let status = 0;
  const readVarint = () => {
    let v = 0;
    for (let shift = 0; i < buf.length; shift += 7) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    throw new Error("truncated varint in HealthCheckResponse");
  };
  while (i < buf.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const v = readVarint();
      if (field === 1) status = v;
    } else if (wire === 2) {
      const length = readVarint(); // read before `i +=` takes i's value
      i += length;
    }
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire} in HealthCheckResponse`);
  }
  return status;
}

export function grpcHealthCheck(host: string, port: number, service: string, timeoutMs: number): Promise<ProbeOutcome> {
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.user_agent": "skiff-probe/1.0" });
  return new Promise<ProbeOutcome>((resolve) => {
    client.makeUnaryRequest(
      CHECK_PATH,
      (s: string) => encodeHealthCheckRequest(s),
      (b: Buffer) => decodeHealthCheckResponse(b),
      service,
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, status) => {
        if (err) {
          const why = err.code === grpc.status.DEADLINE_EXCEEDED ? `health rpc did not complete within ${timeoutMs}ms` : err.details || err.message;
          resolve({ success: false, message: `gRPC health check of ${address} failed: ${why}` });
        } else if (status === 1) resolve({ success: true, message: "" });
        else resolve({ success: false, message: `service unhealthy (responded with "${STATUS_NAMES[status ?? 0] ?? status}")` });
      },
    );
  }).finally(() => client.close());
}
