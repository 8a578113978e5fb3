// The etcd store given several members, the first of which is gone: one that refuses connections
// (its process killed) and one that accepts them and never answers (its machine gone, no reset:
// here a TCP listener that says nothing). Writes, reads and watches must reach the live member
// rather than wait out their deadline on the dead one or fail.
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import { startEtcd, type EtcdServer } from "../harness/etcd.ts";
import { freePort, LOOPBACK } from "../harness/ports.ts";

let etcd: EtcdServer;
let silent: Server;
const sockets = new Set<Socket>();
let silentUrl = "";
let refusingUrl = "";
beforeAll(async () => {
  etcd = await startEtcd();
  silent = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, LOOPBACK, r));
  silentUrl = `https://${LOOPBACK}:${(silent.address() as { port: number }).port}`;
  refusingUrl = `https://${LOOPBACK}:${await freePort()}`; // nothing listens there
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  silent?.close();
  await etcd?.stop();
});

const text = (v: Uint8Array | undefined) => (v ? Buffer.from(v).toString() : undefined);

for (const [what, dead] of [
  ["refuses connections", () => refusingUrl],
  ["never answers", () => silentUrl],
] as const) {
  it(`writes, reads and watches reach the live member when the first one ${what}`, async () => {
    // The request deadline is far longer than the test waits: only moving on can make it pass.
    const store = createEtcdStore({ endpoints: [dead(), etcd.endpoint], prefix: `/members/${what.replace(/ /g, "-")}`, tls: etcd.tls, dialTimeoutMs: 500, requestTimeoutMs: 120_000 });
    try {
      const from = (await store.currentRevision()) + 1;
      const abort = new AbortController();
      const seen: string[] = [];
      const watching = (async () => {
        for await (const batch of store.watch("/k", from, abort.signal)) {
          for (const ev of batch) seen.push(`${ev.type} ${ev.key} ${text(ev.type === "put" ? ev.value : undefined)}`);
          if (seen.length >= 2) abort.abort();
        }
      })();
      await store.create("/k1", Buffer.from("one"));
      await store.create("/k2", Buffer.from("two"));
      expect(text((await store.get("/k1"))?.value)).toBe("one");
      await watching;
      expect(seen).toEqual(["put /k1 one", "put /k2 two"]);
    } finally {
      await store.close();
    }
  }, 60_000);
}
