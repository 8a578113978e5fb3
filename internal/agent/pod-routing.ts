// Pod traffic between nodes, for agents that run real pod networks (never hollow nodes):
// - host-gateway routes: from a Node informer, `<pod CIDR of node X> via <InternalIP of X>` for
//   every other node (internal/network/routes.ts), re-planned on every Node change and every
//   resyncMs (repairs routes someone removed or changed); routes of deleted nodes go.
// - the masquerade rule (internal/network/masquerade.ts) that keeps pod source IPs between pods
//   of the cluster CIDR and masquerades the rest; installed at start, repaired at every resync.
// A node that cannot get a route (not on this node's L2 segment, overlapping CIDR, …) is logged
// and gets a Warning Event, once each time it enters that state.
import type { Transport } from "@connectrpc/connect";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { createEventRecorder } from "../client/events.ts";
import { createInformer } from "../client/informer.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { componentLog, type Logger } from "../log/log.ts";
import { ensureMasquerade } from "../network/masquerade.ts";
import { applyRouteCommands, netContains, parseNet, planRoutes, readHostRoutes, type HostRoutes, type PeerNode } from "../network/routes.ts";

export interface PodRoutingOptions {
  /** The cluster's pod network: traffic to it keeps the pod's source IP. */
  clusterCidr: string;
  /** The CNI network name (names the masquerade chain). */
  network: string;
  /** How often routes and the masquerade rule are checked and repaired. Default 10 s. */
  resyncMs?: number;
  /** The host operations (tests replace them). */
  host?: Partial<RoutingHost>;
}

export interface RoutingHost {
  readRoutes(): Promise<HostRoutes>;
  applyRoutes(commands: string[]): Promise<void>;
  ensureMasquerade(o: { network: string; podCidr: string; clusterCidr: string }): Promise<void>;
}

export interface PodRouting {
  /** Installs the masquerade rule, syncs the Node informer and programs the routes once. */
  start(): Promise<void>;
  /** Stops watching; routes and rules stay (the next agent takes them over). */
  stop(): Promise<void>;
  /** Plans and applies now (tests; normally driven by Node changes and the resync). */
  sync(): Promise<void>;
  /** Calls `fn` with every version of Node `name` the informer sees (the agent's own Node: one watch of Nodes per agent, not two). */
  onNode(name: string, fn: (n: Node) => void): void;
}

/** The node's pod CIDRs and InternalIP, as the route manager needs them. */
export function peerOf(n: Node): PeerNode {
  const spec = n.spec;
  const podCidrs = spec?.podCidrs.length ? [...spec.podCidrs] : spec?.podCidr ? [spec.podCidr] : [];
  const internalIP = n.status?.addresses.find((a) => a.type === "InternalIP")?.address ?? "";
  return { name: n.metadata?.name ?? "", podCidrs, internalIP };
}

export function createPodRouting(
  opts: PodRoutingOptions & { transport: Transport; nodeName: string; podCidr: string; log: Logger },
): PodRouting {
  const log = componentLog(opts.log, "pod-routing");
  const host: RoutingHost = {
    readRoutes: opts.host?.readRoutes ?? readHostRoutes,
    applyRoutes: opts.host?.applyRoutes ?? applyRouteCommands,
    ensureMasquerade: opts.host?.ensureMasquerade ?? ensureMasquerade,
  };
  const resyncMs = opts.resyncMs ?? 10_000;
  const informer = createInformer<Node>(createResourceClient<Node>(opts.transport, "Node"), { log: componentLog(log, "node-informer") });
  const recorder = createEventRecorder({ transport: opts.transport, component: "skiff-agent", host: opts.nodeName, log });
  const cluster = parseNet(opts.clusterCidr);
  const insideCluster = (cidr: string) => {
    const n = parseNet(cidr);
    return !!cluster && !!n && n.prefix >= cluster.prefix && netContains(cluster, n.network);
  };
  const stopping = new AbortController();
  let timer: ReturnType<typeof setInterval> | undefined;
  /** Skipped nodes already reported, by "node/reason/message". */
  let reported = new Set<string>();
  let running: Promise<void> | undefined;
  let lastRoutes = "";
  let warnedMismatch = false;

  async function syncOnce(full: boolean): Promise<void> {
    if (full) {
      await host.ensureMasquerade({ network: opts.network, podCidr: opts.podCidr, clusterCidr: opts.clusterCidr }).catch((err) =>
        log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not install the pod masquerade rule; retrying at the next resync"),
      );
    }
    const self = informer.get(opts.nodeName);
    const stored = self ? peerOf(self).podCidrs : [];
    const mismatch = stored.length > 0 && !stored.includes(opts.podCidr);
    if (mismatch && !warnedMismatch) {
      const message = `this node's pods use ${opts.podCidr} (--pod-cidr) but its Node says ${stored.join(", ")}: other nodes route ${stored.join(", ")} here`;
      log.warn({ node: opts.nodeName }, message);
      recorder.event(self!, "Warning", "PodCIDRMismatch", message);
    }
    warnedMismatch = mismatch;
    const plan = planRoutes({ self: opts.nodeName, ownPodCidr: opts.podCidr, peers: informer.list().map(peerOf), host: await host.readRoutes() });
    const now = new Set<string>();
    for (const s of plan.skipped) {
      const key = `${s.node}/${s.reason}/${s.message}`;
      now.add(key);
      if (reported.has(key)) continue;
      log.warn({ node: s.node, reason: s.reason }, s.message);
      const node = informer.get(s.node);
      if (node) recorder.event(node, "Warning", s.reason === "NotOnSegment" ? "NodeNotOnSegment" : "PodRouteSkipped", `${opts.nodeName}: ${s.message}`);
    }
    reported = now;
    if (plan.commands.length > 0) {
      await host.applyRoutes(plan.commands);
      log.info({ commands: plan.commands }, "pod routes changed");
    }
    const summary = plan.want.map((w) => `${w.dst}>${w.via}`).join(",");
    if (summary !== lastRoutes) {
      log.info({ routes: plan.want.map((w) => ({ podCidr: w.dst, via: w.via, node: w.node })) }, "pod routes to other nodes");
      // Reachable, but masqueraded: the pods there would see this node's address.
      const outside = [opts.podCidr, ...plan.want.map((w) => w.dst)].filter((c) => !insideCluster(c));
      if (outside.length > 0) log.warn({ clusterCidr: opts.clusterCidr, podCidrs: outside }, "pod CIDRs outside --cluster-cidr: traffic between them and other nodes' pods is masqueraded");
      lastRoutes = summary;
    }
  }

  /** One sync at a time; requests while one runs are merged into one more run after it. */
  let dirty = false;
  let dirtyFull = false;
  function sync(full = false): Promise<void> {
    dirty = true;
    dirtyFull ||= full;
    running ??= (async () => {
      try {
        while (dirty) {
          const f = dirtyFull;
          dirty = false;
          dirtyFull = false;
          await syncOnce(f);
        }
      } finally {
        running = undefined;
      }
    })();
    return running;
  }

  const kick = () => {
    if (stopping.signal.aborted || !informer.hasSynced()) return;
    sync().catch((err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "pod route sync failed; retrying at the next resync"));
  };
  informer.onAdd(kick);
  informer.onUpdate((a, b) => {
    const pa = peerOf(a);
    const pb = peerOf(b);
    if (pa.internalIP !== pb.internalIP || pa.podCidrs.join() !== pb.podCidrs.join()) kick();
  });
  informer.onDelete(kick);

  return {
    onNode(name, fn) {
      informer.onAdd((n) => n.metadata?.name === name && fn(n));
      informer.onUpdate((_old, n) => n.metadata?.name === name && fn(n));
    },
    async start() {
      informer.start(stopping.signal);
      await informer.waitForSync(stopping.signal);
      await sync(true).catch((err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "pod route sync failed; retrying at the next resync"));
      timer = setInterval(() => {
        if (stopping.signal.aborted) return;
        sync(true).catch((err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "pod route sync failed; retrying at the next resync"));
      }, resyncMs);
    },
    async stop() {
      stopping.abort();
      if (timer) clearInterval(timer);
      await informer.stop();
      await running?.catch(() => undefined);
    },
    sync: () => sync(true),
  };
}
