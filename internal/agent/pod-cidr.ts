// `skiff agent --pod-cidr allocated`: the node's pod CIDR comes from the controller-manager (node
// lifecycle controller, --cluster-cidr) instead of a flag, as with a kubelet started without
// --pod-cidr. The pod network needs its CIDR before the agent starts, so this runs first: it
// registers the Node bare if it does not exist yet (the agent's own registration fills in the
// rest later), then waits until Node.spec.podCIDR is set.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { NodeSchema, type Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Logger } from "../log/log.ts";
import { sleep } from "../util/sleep.ts";
import { LABEL_HOSTNAME } from "./node.ts";

/** The --pod-cidr value that asks for the allocated range. */
export const ALLOCATED = "allocated";

export async function allocatedPodCidr(opts: {
  client: ResourceClient<Node>;
  nodeName: string;
  log: Logger;
  signal?: AbortSignal;
  /** Between looks at the Node. Default 500 ms. */
  pollMs?: number;
  /** Between "still waiting" log lines. Default 30 s. */
  remindMs?: number;
}): Promise<string> {
  const { client, nodeName, log } = opts;
  const signal = opts.signal ?? new AbortController().signal;
  const pollMs = opts.pollMs ?? 500;
  const remindMs = opts.remindMs ?? 30_000;
  let lastLog = 0;
  for (;;) {
    if (signal.aborted) throw new Error("stopped while waiting for a pod CIDR");
    try {
      let node: Node | undefined;
      try {
        node = await client.get("", nodeName);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
        node = await client
          .create(create(NodeSchema, { metadata: { name: nodeName, labels: { [LABEL_HOSTNAME]: nodeName } } }))
          .catch((e: unknown) => {
            if (ConnectError.from(e).code === Code.AlreadyExists) return undefined;
            throw e;
          });
      }
      const cidr = node?.spec?.podCidrs[0] || node?.spec?.podCidr;
      if (cidr) {
        log.info({ node: nodeName, podCidr: cidr }, "using the pod CIDR allocated to this node");
        return cidr;
      }
      if (Date.now() - lastLog >= remindMs) {
        log.info({ node: nodeName }, "waiting for a pod CIDR in the Node's spec (allocated by the controller-manager from its --cluster-cidr)");
        lastLog = Date.now();
      }
    } catch (err) {
      if (Date.now() - lastLog >= remindMs) {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not read this node's Node object; retrying");
        lastLog = Date.now();
      }
    }
    await sleep(pollMs, signal);
  }
}
