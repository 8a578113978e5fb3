// Several apiservers on one etcd each publish their address in the `kubernetes` Endpoints, as
// Kubernetes' lease endpoint reconciler does: every apiserver renews a Lease of its own
// (skiff-system/apiserver-<address>-<port>, label skiff.io/apiserver-endpoint) and, on each tick,
// deletes the Leases that expired (an apiserver that died) and writes the Endpoints from the live
// ones. Clients learn every apiserver from those Endpoints (internal/client/failover.ts). On a
// clean shutdown an apiserver removes its Lease and its address at once.
import { create, equals } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { LeaseSchema, type Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { EndpointsSchema, type Endpoints, type EndpointSubset } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { KUBERNETES_SERVICE } from "./kubernetes-service.ts";
import type { ResourceOps } from "./resources.ts";

const LEASE_NAMESPACE = "skiff-system";
export const ENDPOINT_LEASE_LABEL = "skiff.io/apiserver-endpoint";
const LABELS = { component: "apiserver", provider: "kubernetes" };
/** Bounded: a cluster with more apiservers than this is not one Skiff is built for. */
const MAX_APISERVERS = 64;

export interface EndpointLeaseOptions {
  ops: Map<string, ResourceOps>;
  /** This apiserver's advertised address and port. */
  address: string;
  port: number;
  /** How often the Lease is renewed and the Endpoints reconciled. Default 5 s. */
  intervalMs?: number;
  /** A Lease older than this is an apiserver that is gone. Default 15 s (Kubernetes' master lease TTL). */
  leaseDurationSeconds?: number;
  log?: Logger;
}

export interface EndpointLeaseReconciler {
  /** One renew + reconcile now (the loop calls it; tests may too). */
  reconcile(): Promise<void>;
  /** Stops the loop and removes this apiserver's Lease and address. */
  stop(): Promise<void>;
}

export function endpointLeaseName(address: string, port: number): string {
  return `apiserver-${address.replace(/[^0-9a-zA-Z.]/g, "-").toLowerCase()}-${port}`;
}

const notFound = (err: unknown) => err instanceof ConnectError && err.code === Code.NotFound;
const conflict = (err: unknown) => err instanceof ConnectError && (err.code === Code.Aborted || err.code === Code.AlreadyExists);

/** Subsets of the Endpoints for these "ip:port" holders: one subset per port, addresses sorted. */
export function subsetsFor(holders: { ip: string; port: number }[]): EndpointSubset[] {
  const byPort = new Map<number, Set<string>>();
  for (const h of holders) byPort.set(h.port, (byPort.get(h.port) ?? new Set()).add(h.ip));
  return [...byPort.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, ips]) => create(EndpointsSchema, { subsets: [{ addresses: [...ips].sort().map((ip) => ({ ip })), ports: [{ name: "https", port, protocol: "TCP" }] }] }).subsets[0]);
}

function holderOf(lease: Lease): { ip: string; port: number } | undefined {
  const m = /^(.*):(\d+)$/.exec(lease.spec?.holderIdentity ?? "");
  return m ? { ip: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) } : undefined;
}

export function startEndpointLeases(opts: EndpointLeaseOptions): EndpointLeaseReconciler {
  const leases = opts.ops.get("Lease")!;
  const endpoints = opts.ops.get("Endpoints")!;
  const intervalMs = opts.intervalMs ?? 5000;
  const duration = opts.leaseDurationSeconds ?? 15;
  const name = endpointLeaseName(opts.address, opts.port);
  const identity = opts.address.includes(":") ? `[${opts.address}]:${opts.port}` : `${opts.address}:${opts.port}`;
  let stopped = false;

  async function renew(): Promise<void> {
    const now = timestampFromDate(new Date());
    try {
      const lease = (await leases.get(LEASE_NAMESPACE, name)) as Lease;
      lease.spec = { ...lease.spec!, holderIdentity: identity, leaseDurationSeconds: duration, renewTime: now };
      await leases.update(lease);
    } catch (err) {
      if (!notFound(err)) throw err;
      await leases.create(
        create(LeaseSchema, {
          metadata: { name, namespace: LEASE_NAMESPACE, labels: { [ENDPOINT_LEASE_LABEL]: "true" } },
          spec: { holderIdentity: identity, leaseDurationSeconds: duration, acquireTime: now, renewTime: now },
        }),
      );
    }
  }

  /** The live holders; expired Leases are deleted on the way. */
  async function liveHolders(exclude?: string): Promise<{ ip: string; port: number }[]> {
    const { items } = await leases.list(LEASE_NAMESPACE, `${ENDPOINT_LEASE_LABEL}=true`, "");
    const now = Date.now();
    const live: { ip: string; port: number }[] = [];
    for (const l of (items as Lease[]).slice(0, MAX_APISERVERS)) {
      const renewed = l.spec?.renewTime ? timestampDate(l.spec.renewTime).getTime() : 0;
      const expired = renewed + (l.spec?.leaseDurationSeconds ?? duration) * 1000 < now;
      if (expired || l.metadata!.name === exclude) {
        if (l.metadata!.name !== exclude) opts.log?.info({ lease: l.metadata!.name, holder: l.spec?.holderIdentity }, "an apiserver's endpoint lease expired: removing it from the kubernetes endpoints");
        await leases.delete(LEASE_NAMESPACE, l.metadata!.name).catch((err: unknown) => {
          if (!notFound(err)) throw err;
        });
        continue;
      }
      const h = holderOf(l);
      if (h) live.push(h);
    }
    return live;
  }

  async function writeEndpoints(holders: { ip: string; port: number }[]): Promise<void> {
    // Never publish nothing while running: a client would have nowhere to go (this server is alive).
    const subsets = subsetsFor(holders);
    const current = await (endpoints.get("default", KUBERNETES_SERVICE) as Promise<Endpoints>).catch((err: unknown) => {
      if (notFound(err)) return undefined;
      throw err;
    });
    if (!current) {
      await endpoints.create(create(EndpointsSchema, { metadata: { name: KUBERNETES_SERVICE, namespace: "default", labels: LABELS }, subsets }));
      return;
    }
    if (equals(EndpointsSchema, create(EndpointsSchema, { subsets: current.subsets }), create(EndpointsSchema, { subsets }))) return;
    current.subsets = subsets;
    await endpoints.update(current);
  }

  async function reconcile(): Promise<void> {
    await renew();
    const live = await liveHolders();
    if (!live.some((h) => h.ip === opts.address && h.port === opts.port)) live.push({ ip: opts.address, port: opts.port });
    await writeEndpoints(live);
  }

  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = reconcile().catch((err: unknown) => {
      // Conflicts are two apiservers writing at once: the next tick settles it.
      if (!conflict(err) && !stopped) opts.log?.warn({ err: String(err) }, "could not reconcile the kubernetes endpoints");
    });
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();

  return {
    reconcile,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await running;
      try {
        const others = await liveHolders(name);
        if (others.length > 0) await writeEndpoints(others);
      } catch (err) {
        opts.log?.warn({ err: String(err) }, "could not remove this apiserver from the kubernetes endpoints");
      }
    },
  };
}
