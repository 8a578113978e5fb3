import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ResourceOps } from "../apiserver/resources.ts";
import { initialClusterFor, membersThrough, type ClusterApi, type EtcdMemberInfo, type EtcdMembers } from "./members.ts";
import { createServerService } from "./service.ts";

function fakeMembers(initial: EtcdMemberInfo[]): EtcdMembers & { all: EtcdMemberInfo[] } {
  let next = 100;
  const m = {
    all: [...initial],
    list: async () => [...m.all],
    add: async (peerUrl: string) => {
      const added = { id: String(next++), name: "", peerUrls: [peerUrl], clientUrls: [] };
      m.all.push(added);
      return { added, members: [...m.all] };
    },
    remove: async (id: string) => {
      m.all = m.all.filter((x) => x.id !== id);
      return [...m.all];
    },
    close: () => {},
  };
  return m;
}

/** etcd's Cluster API over members s1 and s2 that refuses the first `refusals` removals as etcd does right after a join. */
function refusingCluster(refusals: number) {
  const c = {
    removeCalls: 0,
    members: [
      { ID: "1", name: "s1", peerURLs: ["https://10.0.0.1:2380"], clientURLs: ["https://10.0.0.1:2379"] },
      { ID: "2", name: "s2", peerURLs: ["https://10.0.0.2:2380"], clientURLs: ["https://10.0.0.2:2379"] },
    ],
    memberList: async () => ({ members: [...c.members] }),
    memberAdd: async () => {
      throw new Error("not used");
    },
    memberRemove: async (req: { ID: string }) => {
      if (++c.removeCalls <= refusals) throw new Error("etcdserver: unhealthy cluster");
      c.members = c.members.filter((m) => m.ID !== req.ID);
      return { members: [...c.members] };
    },
  };
  return c as typeof c & ClusterApi;
}
const fastRetry = { attempts: 4, delayMs: 1 };

const s1 = { id: "1", name: "s1", peerUrls: ["https://10.0.0.1:2380"], clientUrls: ["https://10.0.0.1:2379"] };
const shared = () => ({ ca: { cert: "CA", key: "CAKEY" }, etcdCa: { cert: "ECA", key: "ECAKEY" }, serviceAccountKey: { privateKey: "SA", publicKey: "SAPUB" }, encryptionConfig: "enc" });
const deleted: string[] = [];
const nodes = { delete: async (_ns: string, name: string) => void deleted.push(name) } as unknown as ResourceOps;
type Handlers = { joinServer(r: object): Promise<Record<string, unknown>>; removeServer(r: object): Promise<{ members: { name: string }[] }> };
const code = (p: Promise<unknown>) => p.then(() => "ok", (e: unknown) => ConnectError.from(e).code);

describe("ServerService", () => {
  it("adds the member and answers the shared keys with the new member's --initial-cluster", async () => {
    const members = fakeMembers([s1]);
    const svc = createServerService({ members, shared, nodes }) as unknown as Handlers;
    const res = await svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" });
    expect(res.initialCluster).toBe("s1=https://10.0.0.1:2380,s2=https://10.0.0.2:2380");
    expect(res).toMatchObject({ caKey: "CAKEY", etcdCaKey: "ECAKEY", serviceAccountKey: "SA", encryptionConfig: "enc" });
    expect(members.all).toHaveLength(2);
  });

  it("refuses a taken name, a bad peer URL, and joins while another added member never started; reuses its own unstarted member", async () => {
    const members = fakeMembers([s1]);
    const svc = createServerService({ members, shared, nodes }) as unknown as Handlers;
    expect(await code(svc.joinServer({ serverName: "s1", peerUrl: "https://10.0.0.9:2380" }))).toBe(Code.AlreadyExists);
    expect(await code(svc.joinServer({ serverName: "s2", peerUrl: "http://10.0.0.2:2380" }))).toBe(Code.InvalidArgument);
    expect(await code(svc.joinServer({ serverName: "S_2", peerUrl: "https://10.0.0.2:2380" }))).toBe(Code.InvalidArgument);
    await svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" });
    expect(await code(svc.joinServer({ serverName: "s3", peerUrl: "https://10.0.0.3:2380" }))).toBe(Code.FailedPrecondition);
    // s2 crashed after its add and asks again: the same member, no second add.
    await svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" });
    expect(members.all).toHaveLength(2);
  });

  it("has the apiserver's storage follow the members after an add and a removal, not after a refused or repeated join", async () => {
    const members = fakeMembers([s1]);
    let changes = 0;
    const svc = createServerService({ members, shared, nodes, onMembersChanged: () => changes++ }) as unknown as Handlers;
    await svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" });
    expect(changes).toBe(1);
    await svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" }); // its own unstarted member again
    expect(await code(svc.joinServer({ serverName: "s1", peerUrl: "https://10.0.0.9:2380" }))).toBe(Code.AlreadyExists);
    expect(changes).toBe(1);
    members.all[1].name = "s2";
    await svc.removeServer({ serverName: "s2" });
    expect(changes).toBe(2);
  });

  it("removes a member and its Node; never the last member; an unknown name is NOT_FOUND", async () => {
    const members = fakeMembers([s1, { ...s1, id: "2", name: "s2", peerUrls: ["https://10.0.0.2:2380"] }]);
    const svc = createServerService({ members, shared, nodes }) as unknown as Handlers;
    expect(await code(svc.removeServer({ serverName: "nope" }))).toBe(Code.NotFound);
    const res = await svc.removeServer({ serverName: "s2" });
    expect(res.members.map((m) => m.name)).toEqual(["s1"]);
    expect(deleted).toContain("s2");
    expect(await code(svc.removeServer({ serverName: "s1" }))).toBe(Code.FailedPrecondition);
  });

  it("answers UNAVAILABLE while etcd is not ready for another member (the joiner tries again)", async () => {
    const members = fakeMembers([s1]);
    members.add = async () => {
      throw new Error("etcdserver: unhealthy cluster");
    };
    const svc = createServerService({ members, shared, nodes }) as unknown as Handlers;
    expect(await code(svc.joinServer({ serverName: "s2", peerUrl: "https://10.0.0.2:2380" }))).toBe(Code.Unavailable);
  });

  it("retries etcd's 'unhealthy cluster' refusal of a removal (seconds after a join) until etcd takes it", async () => {
    const cluster = refusingCluster(2);
    const svc = createServerService({ members: { ...membersThrough(cluster, fastRetry), close: () => {} }, shared, nodes }) as unknown as Handlers;
    const res = await svc.removeServer({ serverName: "s2" });
    expect(res.members.map((m) => m.name)).toEqual(["s1"]);
    expect(cluster.removeCalls).toBe(3);
  });

  it("a refusal that outlasts the retries is UNAVAILABLE with a line saying to try again", async () => {
    const cluster = refusingCluster(Infinity);
    const svc = createServerService({ members: { ...membersThrough(cluster, fastRetry), close: () => {} }, shared, nodes }) as unknown as Handlers;
    const err = await svc.removeServer({ serverName: "s2" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe("etcd is not ready to lose a member yet (a member is missing, or joined moments ago): try again shortly");
    expect(cluster.removeCalls).toBe(fastRetry.attempts);
    expect(cluster.members.map((m) => m.name)).toEqual(["s1", "s2"]);
  });

  it("initialClusterFor names the new member and leaves out others not started", () => {
    const list = [s1, { id: "7", name: "", peerUrls: ["https://10.0.0.7:2380"], clientUrls: [] }];
    expect(initialClusterFor(list, "7", "s7")).toBe("s1=https://10.0.0.1:2380,s7=https://10.0.0.7:2380");
  });
});
