// A network partition between one node and the apiserver: an nftables rule inside the node's
// network namespace drops everything it sends to the apiserver's address and port (the pods and
// the other node are untouched). Node heartbeats come every 10 s (the agent's default); the
// controller-manager (a child process) declares a node lost after 20 s of silence and evicts its
// pods 1 s later.
//   - shorter than that (5 s): the node stays Ready throughout, no pod is replaced, no container
//     restarts;
//   - longer: the node goes NotReady, its pods are recreated on the other node; once healed, the
//     agent stops and removes the containers of its now-deleted pods and the Deployment has
//     exactly its replicas again.
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { NODE_LEASE_NAMESPACE } from "../../internal/agent/lease.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { startMultiNode, waitFor, type ClusterNode, type MultiNodeCluster } from "../harness/multinode.ts";
import { startChildControlPlane } from "./components.ts";

const REPLICAS = 4;
const GRACE_S = 20;

let c: MultiNodeCluster;
let comps: Awaited<ReturnType<typeof startChildControlPlane>>;
beforeAll(async () => {
  c = await startMultiNode({ nodes: 2 });
  comps = await startChildControlPlane(c, ["--node-monitor-period", "1s", "--node-monitor-grace-period", `${GRACE_S}s`, "--pod-eviction-timeout", "1s"]);
}, 180_000);
afterAll(async () => {
  for (const comp of Object.values(comps ?? {})) await comp.stop();
  await c?.stop();
});

const TABLE = "skiff_chaos_partition";

/** Drops every packet the node sends to the apiserver (inside the node's netns: only this node is cut off). */
async function cut(node: ClusterNode): Promise<void> {
  const api = new URL(c.cp.server.url);
  await runChecked("ip", ["netns", "exec", node.netns, "nft", "-f", "-"], {
    stdin: `table inet ${TABLE} {\n chain out {\n  type filter hook output priority 0;\n  ip daddr ${api.hostname} tcp dport ${api.port} drop\n }\n}\n`,
  });
}

async function heal(node: ClusterNode): Promise<void> {
  await run("ip", ["netns", "exec", node.netns, "nft", "delete", "table", "inet", TABLE]);
}

/** Records whether a node's Ready condition was ever anything but True while it ran. */
function readinessWatcher(nodeName: string) {
  const seen: string[] = [];
  const abort = new AbortController();
  let markLive!: () => void;
  const live = new Promise<void>((r) => (markLive = r));
  void (async () => {
    let rv = "";
    while (!abort.signal.aborted) {
      try {
        for await (const ev of c.nodeObjects.watch("", { resourceVersion: rv, signal: abort.signal })) {
          rv = ev.object.metadata?.resourceVersion || rv;
          if (ev.type === "BOOKMARK") markLive();
          else if (ev.object.metadata?.name === nodeName) seen.push(ev.object.status?.conditions.find((k) => k.type === "Ready")?.status ?? "none");
        }
      } catch {
        if (!abort.signal.aborted) await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return { live, seen, stop: () => abort.abort() };
}

const webPods = async () => (await c.pods.list("default")).items.filter((p) => p.metadata!.labels.app === "web");
const readyOf = async (node: ClusterNode) => (await c.nodeObjects.get("", node.name)).status?.conditions.find((k) => k.type === "Ready")?.status;
const restarts = (pods: Pod[]) => pods.flatMap((p) => p.status?.containerStatuses.map((s) => s.restartCount) ?? []);

it("a partition shorter than the grace moves nothing; a longer one moves the node's pods, and healing cleans the node up", async () => {
  const template = c.pod(undefined, "x").spec!;
  template.containers[0].command = ["sleep", "3600"];
  template.terminationGracePeriodSeconds = 1n;
  await c.cp.client<Deployment>("Deployment").create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: REPLICAS, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: template } },
    }),
  );
  const n1 = c.node(1);
  const n2 = c.node(2);
  await waitFor("4 web pods Running, some on node 1", async () => {
    const pods = await webPods();
    return pods.length === REPLICAS && pods.every((p) => p.status?.phase === "Running") && pods.some((p) => p.spec!.nodeName === n1.name);
  }, 120_000);
  const before = await webPods();

  // Short: 5 s cut, then watched until well past the grace period from the cut.
  const watcher = readinessWatcher(n1.name);
  await watcher.live;
  const cutAt = Date.now();
  await cut(n1);
  await new Promise((r) => setTimeout(r, 5_000));
  await heal(n1);
  // A fresh heartbeat from node 1 after the grace period (counted from the cut) proves it came back in time.
  await waitFor("node 1 heartbeats after the grace period", async () => {
    const hb = (await c.cp.client<Lease>("Lease").get(NODE_LEASE_NAMESPACE, n1.name)).spec?.renewTime;
    return hb !== undefined && Number(hb.seconds) * 1000 > cutAt + (GRACE_S + 2) * 1000;
  }, 60_000);
  watcher.stop();
  expect(watcher.seen.filter((s) => s !== "True"), "node 1's Ready during the short partition").toEqual([]);
  const afterShort = await webPods();
  expect(afterShort.map((p) => p.metadata!.uid).sort()).toEqual(before.map((p) => p.metadata!.uid).sort());
  expect(restarts(afterShort)).toEqual(Array(REPLICAS).fill(0));

  // Long: cut until node 1 is NotReady and its pods are replaced on node 2.
  const onN1 = before.filter((p) => p.spec!.nodeName === n1.name);
  const containersOnN1 = (await n1.runtime.listContainers()).length;
  expect(containersOnN1).toBeGreaterThanOrEqual(onN1.length);
  await cut(n1);
  await waitFor("node 1 NotReady", async () => (await readyOf(n1)) !== "True", 90_000);
  await waitFor("4 web pods Running on node 2", async () => {
    const pods = (await webPods()).filter((p) => p.metadata!.deletionTimestamp === undefined);
    return pods.length === REPLICAS && pods.every((p) => p.spec!.nodeName === n2.name && p.status?.phase === "Running");
  }, 90_000);
  const oldUids = new Set(onN1.map((p) => p.metadata!.uid));
  const liveOld = (await webPods()).filter((p) => oldUids.has(p.metadata!.uid) && p.metadata!.deletionTimestamp === undefined);
  expect(liveOld, "node 1's pods are all being deleted").toEqual([]);
  // While cut off, node 1 still runs the containers of its deleted pods: nobody could tell it.
  expect((await n1.runtime.listContainers()).length).toBe(containersOnN1);

  await heal(n1);
  await waitFor("node 1 Ready again", async () => (await readyOf(n1)) === "True", 60_000);
  await waitFor("node 1's containers of the deleted pods removed", async () => (await n1.runtime.listContainers()).length === 0, 60_000);
  // The agent removes the containers first and then confirms each deletion: the objects go a moment later.
  await waitFor("node 1's deleted pods confirmed gone", async () => (await webPods()).length === REPLICAS, 30_000);
  const final = await webPods();
  expect(final.length).toBe(REPLICAS);
  expect(final.every((p) => p.status?.phase === "Running" && p.spec!.nodeName === n2.name)).toBe(true);
}, 400_000);
