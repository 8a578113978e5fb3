import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ResourceOps } from "../apiserver/resources.ts";
import { initialClusterFor, type EtcdMemberInfo, type EtcdMembers } from "./members.ts";
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

  it("initialClusterFor names the new member and leaves out others not started", () => {
    const list = [s1, { id: "7", name: "", peerUrls: ["https://10.0.0.7:2380"], clientUrls: [] }];
    expect(initialClusterFor(list, "7", "s7")).toBe("s1=https://10.0.0.1:2380,s7=https://10.0.0.7:2380");
  });
});
