// The storage transport against a real etcd: a request etcd refuses for its size must fail that
// call only. Before, a 16 MiB txn hung to its deadline and left the shared HTTP/2 connection
// refusing every later call (NGHTTP2_ENHANCE_YOUR_CALM) until it went idle a minute later.
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KV, RequestOpSchema } from "../../gen/etcd/api/etcdserverpb/rpc_pb.js";
import { createGrpcTransport } from "../../internal/client/grpc-transport.ts";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import { StoreError, type Store } from "../../internal/storage/store.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";

let etcd: EtcdServer;
let store: Store;
beforeAll(async () => {
  etcd = await startEtcd();
  store = createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/oversized", tls: etcd.tls });
}, 60_000);
afterAll(async () => {
  await store?.close();
  await etcd?.stop();
});

const MiB = 1024 * 1024;

function put(key: string, size: number) {
  const value = Buffer.alloc(size, 120);
  return { success: [create(RequestOpSchema, { request: { case: "requestPut", value: { key: Buffer.from(key), value } } })] };
}

describe("the etcd transport and oversized requests", () => {
  it("the store refuses a value over etcd's limit before sending it, and keeps working", async () => {
    const err = await store.create("/big", Buffer.alloc(3 * MiB)).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("TooLarge");
    const kv = await store.create("/small", Buffer.from("ok"));
    expect(kv.modRevision).toBeGreaterThan(0);
  });

  it.each([8, 16])("a %i MiB txn that etcd refuses fails alone; the next call on the same transport succeeds", async (mib) => {
    // A transport that lets the request out, to see what etcd does with it.
    const transport = createGrpcTransport({ baseUrl: etcd.endpoint, tls: etcd.tls, writeMaxBytes: 64 * MiB });
    const kv = createClient(KV, transport);
    try {
      const err = await kv.txn(put(`/oversized/huge-${mib}`, mib * MiB), { timeoutMs: 10_000 }).catch((e) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      // The next small call: answered, not refused by a wedged connection, well within its deadline.
      const res = await kv.txn(put(`/oversized/after-${mib}`, 10), { timeoutMs: 3000 });
      expect(res.succeeded).toBe(true);
      expect(Number(res.header?.revision)).toBeGreaterThan(0);
    } finally {
      transport.close();
    }
  }, 30_000);
});
