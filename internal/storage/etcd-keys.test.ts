// Values from etcd arrive as views into gRPC's receive buffers (64 KiB each). What the store hands
// out must own its bytes: the watch cache keeps them for its history, and a kept view would keep
// the whole receive buffer alive (the apiserver grew by ~7 KiB per 1 KB write that way).
import { describe, expect, it } from "vitest";
import { bytes } from "./etcd-keys.ts";

describe("bytes", () => {
  it("copies a value out of a larger receive buffer", () => {
    const received = Buffer.alloc(65536, 7);
    const value = bytes(received.subarray(1000, 2000));
    expect(value.buffer.byteLength).toBe(1000);
    expect(value).toEqual(new Uint8Array(1000).fill(7));
    received.fill(0); // the buffer is reused for the next message
    expect(value[0]).toBe(7);
  });

  it("keeps a buffer that is the value's own, as a plain Uint8Array", () => {
    const own = Buffer.from(new Uint8Array([1, 2, 3]).buffer);
    const value = bytes(own);
    expect(value.constructor).toBe(Uint8Array);
    expect(value.buffer).toBe(own.buffer);
    expect(value).toEqual(new Uint8Array([1, 2, 3]));
    expect(bytes(undefined)).toEqual(new Uint8Array(0));
  });
});
