// PodNetwork: how the agent gives a pod its network. Two implementations:
// - createHostNetwork: no namespaces at all; hands out addresses from the node's pod CIDR so
//   that pods get distinct IPs (the fake runtime, hollow nodes, tests).
// - createCniNetwork: a named network namespace per pod (internal/network/netns.ts) attached by
//   the CNI bridge network (internal/network/cni.ts).
// Both are idempotent: setUp for a pod that is already set up returns the same address (an
// agent restart adopts running pods this way), tearDown of an unknown pod succeeds.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ensureBridge } from "../network/bridge.ts";
import { createCni, type CniOptions, type PortMapping } from "../network/cni.ts";
import { formatIPv4, parseCidr } from "../network/conflist.ts";
import { createNetns, deleteNetns, listNetns, netnsExists, netnsPath } from "../network/netns.ts";

export interface PodNetworkStatus {
  ip: string;
  /** The namespace containers join; "" means the host's. */
  netnsPath: string;
  /** The pod had been set up, but its namespace was gone (a reboot): it was made anew. */
  restored?: boolean;
}

export interface PodNetwork {
  /** Sets up the pod's network, or returns what is already set up for it. */
  setUp(pod: Pod): Promise<PodNetworkStatus>;
  /** Releases the pod's address and namespace; succeeds when there is nothing to release. */
  tearDown(podUid: string): Promise<void>;
  /** Uids of every pod this network holds state for (to find what no pod owns any more). */
  list(): Promise<string[]>;
  /**
   * Makes sure the pods' gateway address exists on this host and returns it, for node-local
   * services such as the cluster DNS. Absent when pods have no gateway on the host.
   */
  hostGateway?(): Promise<string>;
}

export interface HostNetworkOptions {
  /** Addresses are taken from here, skipping the first (the gateway in a real network). */
  podCidr: string;
  /** Keeps allocations across restarts, one file per pod. Absent: in memory only. */
  stateDir?: string;
}

export function createHostNetwork(opts: HostNetworkOptions): PodNetwork {
  const cidr = parseCidr(opts.podCidr);
  const byUid = new Map<string, string>();
  const used = new Set<string>();
  if (opts.stateDir) {
    mkdirSync(opts.stateDir, { recursive: true });
    for (const uid of readdirSync(opts.stateDir)) {
      const ip = readFileSync(join(opts.stateDir, uid), "utf8").trim();
      byUid.set(uid, ip);
      used.add(ip);
    }
  }
  let next = cidr.first + 1;
  return {
    async setUp(pod) {
      const uid = pod.metadata!.uid;
      let ip = byUid.get(uid);
      if (!ip) {
        const size = cidr.last - cidr.first;
        for (let i = 0; i < size && !ip; i++) {
          const candidate = formatIPv4(next);
          next = next >= cidr.last ? cidr.first + 1 : next + 1;
          if (!used.has(candidate)) ip = candidate;
        }
        if (!ip) throw new Error(`no free address left in pod CIDR ${opts.podCidr}`);
        byUid.set(uid, ip);
        used.add(ip);
        if (opts.stateDir) writeFileSync(join(opts.stateDir, uid), `${ip}\n`);
      }
      return { ip, netnsPath: "" };
    },
    async tearDown(uid) {
      const ip = byUid.get(uid);
      if (ip) used.delete(ip);
      byUid.delete(uid);
      if (opts.stateDir) rmSync(join(opts.stateDir, uid), { force: true });
    },
    async list() {
      return [...byUid.keys()];
    },
  };
}

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The named network namespace of a pod: "<CNI network name>-<pod uid>" (e.g. "skiff-3f2a…"). */
export function podNetnsName(network: string, uid: string): string {
  return `${network}-${uid}`;
}

/** hostPort mappings of every container of the pod, for CNI's portmap plugin. */
export function portMappings(pod: Pod): PortMapping[] {
  const out: PortMapping[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports) {
      if (p.hostPort > 0) {
        out.push({
          hostPort: p.hostPort,
          containerPort: p.containerPort,
          protocol: (p.protocol || "TCP").toLowerCase() as PortMapping["protocol"],
          ...(p.hostIp ? { hostIP: p.hostIp } : {}),
        });
      }
    }
  }
  return out;
}

/** A network namespace per pod, attached to the node's CNI bridge network. Needs root. */
export function createCniNetwork(opts: CniOptions): PodNetwork {
  const cni = createCni(opts);
  const prefix = `${opts.network.name}-`;
  return {
    async setUp(pod) {
      const m = pod.metadata!;
      const name = podNetnsName(opts.network.name, m.uid);
      // An attachment on record without its namespace: the namespace (a mount on tmpfs) did not
      // survive a reboot. ADD's CHECK of the cached result then fails and the pod is attached
      // afresh, maybe with another IP.
      const restored = !netnsExists(name) && cni.get(m.uid) !== undefined;
      const path = await createNetns(name);
      const attachment = await cni.add(m.uid, path, {
        portMappings: portMappings(pod),
        args: { K8S_POD_NAMESPACE: m.namespace, K8S_POD_NAME: m.name, K8S_POD_UID: m.uid },
      });
      return { ip: attachment.ip, netnsPath: path, ...(restored ? { restored } : {}) };
    },
    async tearDown(uid) {
      const name = podNetnsName(opts.network.name, uid);
      await cni.del(uid, netnsPath(name));
      await deleteNetns(name);
    },
    async hostGateway() {
      const cidr = parseCidr(opts.network.podCidr);
      const gateway = opts.network.gateway ?? formatIPv4(cidr.first);
      await ensureBridge(opts.network.bridge ?? "skiff0", gateway, cidr.prefix);
      return gateway;
    },
    async list() {
      const uids = new Set(cni.list().map((a) => a.podId));
      for (const name of listNetns()) {
        const uid = name.slice(prefix.length);
        if (name.startsWith(prefix) && UID.test(uid)) uids.add(uid);
      }
      return [...uids];
    },
  };
}
