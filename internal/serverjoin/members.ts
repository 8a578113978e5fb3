// etcd's member list through its Cluster API (over the apiserver's TLS connection to etcd):
// what a server join adds and `skiff server remove` takes away.
import { Etcd3, type IMember } from "etcd3";
import type { EtcdTls } from "../storage/etcd.ts";

export interface EtcdMemberInfo {
  id: string;
  /** Empty while an added member has not started. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
}

export interface EtcdMembers {
  list(): Promise<EtcdMemberInfo[]>;
  /** Adds a voting member; answers every member after the add (the new one without a name yet). */
  add(peerUrl: string): Promise<{ added: EtcdMemberInfo; members: EtcdMemberInfo[] }>;
  remove(id: string): Promise<EtcdMemberInfo[]>;
  close(): void;
}

export function createEtcdMembers(conn: { endpoints: string[]; tls?: EtcdTls }): EtcdMembers {
  const client = new Etcd3({
    hosts: conn.endpoints,
    credentials: conn.tls ? { rootCertificate: Buffer.from(conn.tls.ca), certChain: Buffer.from(conn.tls.cert), privateKey: Buffer.from(conn.tls.key) } : undefined,
    // The library's retries and circuit breaker would turn etcd's "unhealthy cluster" into "circuit
    // open" for seconds: every call goes out once and the callers here decide what to repeat.
    faultHandling: { host: () => noRetry, global: noRetry } as never,
  });
  return { ...membersThrough(client.cluster), close: () => client.close() };
}

/** The calls of etcd's Cluster API a member change makes (etcd3's `client.cluster`). */
export type ClusterApi = Pick<Etcd3["cluster"], "memberList" | "memberAdd" | "memberRemove">;

/** How often, and how far apart, a member change etcd refuses as "not yet" is tried. */
export interface ReconfigRetry {
  attempts: number;
  delayMs: number;
}

/** 20 tries a second apart: well past the 5 s etcd waits for after the leader (re)connected a member. */
const RECONFIG_RETRY: ReconfigRetry = { attempts: 20, delayMs: 1000 };

export function membersThrough(cluster: ClusterApi, retry: ReconfigRetry = RECONFIG_RETRY): Omit<EtcdMembers, "close"> {
  const info = (m: IMember): EtcdMemberInfo => ({ id: String(m.ID), name: m.name ?? "", peerUrls: m.peerURLs ?? [], clientUrls: m.clientURLs ?? [] });
  // Bounded: a cluster without quorum must answer the caller, not hold it.
  const call = { deadline: () => new Date(Date.now() + 15_000) };
  return {
    async list() {
      return (await cluster.memberList({}, { deadline: call.deadline() })).members.map(info);
    },
    async add(peerUrl) {
      const res = await whenReady(retry, () => cluster.memberAdd({ peerURLs: [peerUrl] }, { deadline: call.deadline() }));
      return { added: info(res.member), members: res.members.map(info) };
    },
    async remove(id) {
      return (await whenReady(retry, () => cluster.memberRemove({ ID: id }, { deadline: call.deadline() }))).members.map(info);
    },
  };
}

/**
 * etcd refuses a member change while its leader has been connected to every member for less than
 * 5 s (--strict-reconfig-check: "unhealthy cluster"), as right after a join: both adding and
 * removing wait that out, then give up with etcd's refusal.
 */
async function whenReady<T>(retry: ReconfigRetry, change: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await change();
    } catch (err) {
      if (!isNotReadyForMembers(err) || attempt >= retry.attempts) throw err;
      await new Promise((r) => setTimeout(r, retry.delayMs));
    }
  }
}
const noRetry = { execute: async (fn: (ctx: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };

/** etcd's refusals of a member change that pass once the members have been connected a while. */
export function isNotReadyForMembers(err: unknown): boolean {
  return /unhealthy cluster|not enough started members/.test(err instanceof Error ? err.message : String(err));
}

/**
 * etcd's --initial-cluster for a member joining `members` (the list after its MemberAdd): every
 * started member by name, and the new one (not started, no name yet) under `newName`.
 */
export function initialClusterFor(members: EtcdMemberInfo[], newId: string, newName: string): string {
  return members
    .flatMap((m) => {
      const name = m.id === newId ? newName : m.name;
      return name ? m.peerUrls.map((u) => `${name}=${u}`) : [];
    })
    .join(",");
}
