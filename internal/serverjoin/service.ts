// ServerService: servers joining and leaving the control plane. Flow of a join, after the pipeline
// authenticated a bootstrap token and RBAC allowed `create servers/join` (role server only):
//
//   check name + peer URL → etcd MemberList: name taken? ALREADY_EXISTS · an earlier try of this
//   peer URL that never started? reuse it · another member never started? FAILED_PRECONDITION
//   → MemberAdd(peer URL) → the shared keys (read from disk now) + --initial-cluster
//
// Removal (admins: `delete servers`) is MemberRemove by name, then the server's Node is deleted.
// After either change the apiserver's storage re-reads the member list (onMembersChanged).
import { Code, ConnectError } from "@connectrpc/connect";
import type { JoinServerRequest, RemoveServerRequest } from "../../gen/skiff/v1alpha1/server_service_pb.js";
import { validateDNS1123Subdomain } from "../api/names.ts";
import { invalid } from "../apiserver/errors.ts";
import type { ResourceOps } from "../apiserver/resources.ts";
import type { Target } from "../apiserver/pipeline.ts";
import type { Logger } from "../log/log.ts";
import type { SharedServerKeys } from "../pki/pki.ts";
import { initialClusterFor, isNotReadyForMembers, type EtcdMemberInfo, type EtcdMembers } from "./members.ts";

export interface ServerServiceOptions {
  members: EtcdMembers;
  /** What every server holds alike, read when a server joins (the files may have been rotated). */
  shared(): SharedServerKeys & { encryptionConfig: string };
  nodes: ResourceOps;
  log?: Logger;
  /** After this service added or removed an etcd member: the apiserver's storage follows the member list now. */
  onMembersChanged?(): void;
}

const servers = { apiGroup: "skiff.io", resource: "servers", namespace: "" };
export const serverServiceTargets: Record<string, Target> = {
  joinServer: (req: JoinServerRequest) => ({ ...servers, name: req.serverName, verb: "create", subresource: "join" }),
  removeServer: (req: RemoveServerRequest) => ({ ...servers, name: req.serverName, verb: "delete", subresource: "" }),
};

const memberMessage = (m: EtcdMemberInfo) => ({ name: m.name, peerUrls: m.peerUrls, clientUrls: m.clientUrls });

/** Warns where a cluster gains nothing from its second server: two members need both for quorum. */
export function quorumWarning(members: number): string | undefined {
  return members === 2 ? "the cluster has 2 servers: etcd needs both for quorum, so losing either stops writes (no gain over 1); add a third server" : undefined;
}

export function createServerService(opts: ServerServiceOptions): Record<string, unknown> {
  async function addMember(peerUrl: string) {
    try {
      return await opts.members.add(peerUrl);
    } catch (err) {
      if (isNotReadyForMembers(err)) throw new ConnectError("etcd is not ready for another member yet (a member is missing, or joined moments ago): try again shortly", Code.Unavailable);
      throw err;
    }
  }

  return {
    async joinServer(req: JoinServerRequest) {
      const nameProblems = validateDNS1123Subdomain(req.serverName);
      if (nameProblems.length) throw invalid("join request", [{ field: "serverName", message: nameProblems.join("; ") }]);
      if (!validPeerUrl(req.peerUrl)) throw invalid("join request", [{ field: "peerUrl", message: `must be https://IP:PORT (the joining member's peer address), got "${req.peerUrl.slice(0, 100)}"` }]);

      const before = await opts.members.list();
      if (before.some((m) => m.name === req.serverName && !m.peerUrls.includes(req.peerUrl))) {
        throw new ConnectError(`server "${req.serverName}" is already a member of etcd: pick another --node-name, or remove the old one first (skiff server remove ${req.serverName})`, Code.AlreadyExists);
      }
      if (before.some((m) => m.name !== "" && m.peerUrls.includes(req.peerUrl))) {
        throw new ConnectError(`peer URL ${req.peerUrl} belongs to running member "${before.find((m) => m.peerUrls.includes(req.peerUrl))!.name}": a restarted server keeps its data dir and does not join again`, Code.AlreadyExists);
      }
      const unstarted = before.filter((m) => m.name === "" && !m.peerUrls.includes(req.peerUrl));
      if (unstarted.length) {
        throw new ConnectError(`etcd member ${unstarted[0].id} (${unstarted[0].peerUrls.join(",")}) was added but never started: start that server, or remove the member, before another joins`, Code.FailedPrecondition);
      }
      // An earlier try of this server that never started (it crashed right after the add): reuse its member.
      const retry = before.find((m) => m.name === "" && m.peerUrls.includes(req.peerUrl));
      const { added, members } = retry ? { added: retry, members: before } : await addMember(req.peerUrl);
      if (!retry) opts.onMembersChanged?.();
      opts.log?.info({ server: req.serverName, peerUrl: req.peerUrl, members: members.length }, "etcd member added for a joining server");
      const warning = quorumWarning(members.length);
      if (warning) opts.log?.warn({ members: members.length }, warning);

      const shared = opts.shared();
      return {
        caCertificate: shared.ca.cert,
        caKey: shared.ca.key,
        etcdCaCertificate: shared.etcdCa.cert,
        etcdCaKey: shared.etcdCa.key,
        serviceAccountKey: shared.serviceAccountKey.privateKey,
        serviceAccountPublicKey: shared.serviceAccountKey.publicKey,
        encryptionConfig: shared.encryptionConfig,
        members: members.map((m) => memberMessage(m.id === added.id ? { ...m, name: req.serverName } : m)),
        initialCluster: initialClusterFor(members, added.id, req.serverName),
      };
    },

    async removeServer(req: RemoveServerRequest) {
      if (!req.serverName) throw invalid("remove request", [{ field: "serverName", message: "required" }]);
      const members = await opts.members.list();
      const member = members.find((m) => m.name === req.serverName);
      if (!member) throw new ConnectError(`no etcd member "${req.serverName}" (members: ${members.map((m) => m.name || m.id).join(", ")})`, Code.NotFound);
      if (members.length === 1) throw new ConnectError(`"${req.serverName}" is etcd's only member: removing it would end the cluster`, Code.FailedPrecondition);
      let after: EtcdMemberInfo[];
      try {
        after = await opts.members.remove(member.id);
      } catch (err) {
        if (isNotReadyForMembers(err)) throw new ConnectError("etcd is not ready to lose a member yet (a member is missing, or joined moments ago): try again shortly", Code.Unavailable);
        throw err;
      }
      opts.log?.info({ server: req.serverName, members: after.length }, "etcd member removed");
      opts.onMembersChanged?.();
      const warning = quorumWarning(after.length);
      if (warning) opts.log?.warn({ members: after.length }, warning);
      try {
        await opts.nodes.delete("", req.serverName);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
      return { members: after.map(memberMessage) };
    },
  };
}

function validPeerUrl(url: string): boolean {
  if (url.length > 256) return false;
  try {
    const u = new URL(url);
    return u.protocol === "https:" && u.pathname === "/" && !u.search && u.port !== "" && /^(\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\])$/i.test(u.hostname);
  } catch {
    return false;
  }
}
