// The node heartbeat: a Lease named after the node in skiff-system, renewed every heartbeatMs.
// The node lifecycle controller judges node health by its renewTime, as in Kubernetes; it is
// cheap (a small object) where rewriting the whole node status every 10 s would not be.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { LeaseSchema, LeaseSpecSchema, type Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import { OwnerReferenceSchema } from "../../gen/skiff/v1alpha1/meta_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";

export const NODE_LEASE_NAMESPACE = "skiff-system";

export interface NodeLeaseOptions {
  client: ResourceClient<Lease>;
  nodeName: string;
  /** How long the lease holds without renewal (Kubernetes: 40 s). */
  durationSeconds: number;
  /** The Node, to own the lease (it goes when the Node is deleted). */
  node(): Node | undefined;
}

export interface NodeLease {
  /** Creates the lease, or moves its renewTime to now. */
  renew(): Promise<Lease>;
}

export function createNodeLease(opts: NodeLeaseOptions): NodeLease {
  const { client, nodeName } = opts;
  let lease: Lease | undefined;

  function ownerReferences() {
    const n = opts.node();
    return n?.metadata ? [create(OwnerReferenceSchema, { apiVersion: "v1", kind: "Node", name: n.metadata.name, uid: n.metadata.uid })] : [];
  }

  async function fetch(): Promise<Lease | undefined> {
    try {
      return await client.get(NODE_LEASE_NAMESPACE, nodeName);
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    }
  }

  return {
    async renew() {
      for (let attempt = 0; ; attempt++) {
        const now = timestampFromDate(new Date());
        lease ??= await fetch();
        if (!lease) {
          try {
            lease = await client.create(
              create(LeaseSchema, {
                metadata: { name: nodeName, namespace: NODE_LEASE_NAMESPACE, ownerReferences: ownerReferences() },
                spec: { holderIdentity: nodeName, leaseDurationSeconds: opts.durationSeconds, acquireTime: now, renewTime: now },
              }),
            );
            return lease;
          } catch (err) {
            if (ConnectError.from(err).code !== Code.AlreadyExists || attempt > 2) throw err;
            continue;
          }
        }
        // Shallow copies of what changes (the request is only encoded): no deep clone per renewal.
        const spec = lease.spec ? { ...lease.spec } : create(LeaseSpecSchema, { acquireTime: now });
        spec.holderIdentity = nodeName;
        spec.leaseDurationSeconds = opts.durationSeconds;
        spec.renewTime = now;
        const meta = lease.metadata!;
        const next: Lease = { ...lease, spec, metadata: meta.ownerReferences.length === 0 ? { ...meta, ownerReferences: ownerReferences() } : meta };
        try {
          lease = await client.update(next);
          return lease;
        } catch (err) {
          const code = ConnectError.from(err).code;
          // Stale copy or deleted lease: read it again (or create it) and retry.
          if ((code !== Code.Aborted && code !== Code.NotFound) || attempt > 2) throw err;
          lease = undefined;
        }
      }
    },
  };
}
