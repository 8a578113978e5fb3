import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { mapEtcdError } from "./etcd-errors.ts";
import { StoreError } from "./store.ts";

describe("mapEtcdError", () => {
  it("a KV call reset because etcd went away mid-call is Unavailable, not Canceled", () => {
    const reset = new ConnectError("the call was reset (HTTP/2 code 8)", Code.Canceled);
    const mapped = mapEtcdError(reset, "create /pods/default/a");
    expect(mapped).toBeInstanceOf(StoreError);
    expect((mapped as StoreError).code).toBe("Unavailable");
  });

  it("refused connections and deadlines are Unavailable; a compaction is Compacted", () => {
    expect((mapEtcdError(new ConnectError("connect ECONNREFUSED", Code.Unavailable), "get") as StoreError).code).toBe("Unavailable");
    expect((mapEtcdError(new ConnectError("deadline", Code.DeadlineExceeded), "get") as StoreError).code).toBe("Unavailable");
    expect((mapEtcdError(new ConnectError("etcdserver: mvcc: required revision has been compacted", Code.OutOfRange), "list") as StoreError).code).toBe("Compacted");
  });

  it("other gRPC statuses of etcd become a plain error (the apiserver answers INTERNAL), other errors pass through", () => {
    const denied = new ConnectError("etcdserver: permission denied", Code.PermissionDenied);
    const mapped = mapEtcdError(denied, "get");
    expect(mapped).not.toBeInstanceOf(ConnectError);
    expect((mapped as Error).message).toBe("get: etcd answered PermissionDenied: etcdserver: permission denied");
    const misuse = new TypeError("not a key");
    expect(mapEtcdError(misuse, "get")).toBe(misuse);
  });
});
