import { afterAll, beforeAll, expect, it } from "vitest";
import { createEtcdStore } from "../../internal/storage/etcd.ts";
import { startEtcdCluster, type EtcdCluster } from "./etcd.ts";

let cluster: EtcdCluster;
beforeAll(async () => {
  cluster = await startEtcdCluster();
}, 60_000);
afterAll(() => cluster?.stop());

it("a 3-member cluster elects a new leader after kill -9 of its leader, and takes the member back", async () => {
  const store = createEtcdStore({ endpoints: cluster.endpoints, tls: cluster.tls, prefix: "/t" });
  try {
    await store.create("/a", Buffer.from("1"));
    const first = await cluster.leader();
    await cluster.kill9(first);
    const second = await cluster.leader();
    expect(second.name).not.toBe(first.name);
    // A write through the store works on the remaining two.
    for (;;) {
      try {
        await store.create("/b", Buffer.from("2"));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await cluster.restart(first);
    const back = await cluster.leader();
    expect(cluster.members.filter((m) => m.running)).toHaveLength(3);
    expect(back.running).toBe(true);
    expect(Buffer.from((await store.get("/b"))!.value).toString()).toBe("2");
  } finally {
    await store.close();
  }
}, 120_000);
