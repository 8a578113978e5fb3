import { describe, expect, it } from "vitest";
import { decodeHealthCheckResponse, encodeHealthCheckRequest, grpcHealthCheck } from "./grpc-health.ts";

describe("grpc.health.v1 messages", () => {
  it("encodes the service name as field 1, also when empty", () => {
    expect([...encodeHealthCheckRequest("app")]).toEqual([0x0a, 3, 0x61, 0x70, 0x70]);
    expect([...encodeHealthCheckRequest("")]).toEqual([0x0a, 0]);
    expect(encodeHealthCheckRequest("x".repeat(200)).subarray(0, 3)).toEqual(Buffer.from([0x0a, 0xc8, 0x01]));
  });

  it("reads the status, skipping fields it does not know", () => {
    expect(decodeHealthCheckResponse(Buffer.from([0x08, 1]))).toBe(1);
    expect(decodeHealthCheckResponse(Buffer.alloc(0))).toBe(0);
    // field 2 (length-delimited, 2 bytes) before the status
    expect(decodeHealthCheckResponse(Buffer.from([0x12, 2, 0xff, 0xff, 0x08, 2]))).toBe(2);
    expect(() => decodeHealthCheckResponse(Buffer.from([0x08, 0x80]))).toThrow(/truncated/);
  });
});

describe("the gRPC probe call", () => {
  it("fails with the connection error when nothing listens", async () => {
    // Port 1 on loopback: refused at once.
    const outcome = await grpcHealthCheck("127.0.0.1", 1, "", 2000);
    expect(outcome.success).toBe(false);
    expect(outcome.message).toMatch(/^gRPC health check of 127\.0\.0\.1:1 failed: .*ECONNREFUSED/);
  });
});
