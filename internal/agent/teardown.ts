// Taking a pod off the node: stop its containers (SIGTERM, the grace period, SIGKILL), remove
// them, release its network, delete its directory. Used for deleted pods (then the agent
// confirms the deletion to the apiserver) and for orphans: what the runtime, the network or the
// disk holds for pods that no longer exist or are not bound to this node.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Logger } from "../log/log.ts";
import type { ContainerInfo, ContainerRuntime } from "../runtime/runtime.ts";
import type { PodNetwork } from "./network.ts";
import { MIN_GRACE_AFTER_PRESTOP, stopWithHooks } from "./hooks.ts";
import { removePodDir } from "./pod-files.ts";

export interface TeardownDeps {
  runtime: ContainerRuntime;
  network: PodNetwork;
  rootDir: string;
  log: Logger;
}

/** Grace period for containers nobody owns any more (Kubernetes' minimum). */
export const ORPHAN_GRACE_SECONDS = 2;

/**
 * Stops and removes the given containers of one pod, then its network and directory. With the
 * pod (and its IP) at hand, each container's preStop hook runs first (hooks.ts); orphans have none.
 */
export async function teardownPod(deps: TeardownDeps, uid: string, containers: ContainerInfo[], graceSeconds: number, owner?: { pod: Pod; podIP: string }): Promise<void> {
  const { runtime } = deps;
  const running = containers.filter((c) => c.state === "running" || c.state === "unknown");
  // Sidecars (init containers with restartPolicy Always) stop after the app containers, the last
  // one first, each with what is left of the grace period.
  const sidecars = (owner?.pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always").map((c) => c.name).reverse();
  const started = Date.now();
  const stop = (c: ContainerInfo, grace: number) => stopWithHooks(deps, owner?.pod, owner?.podIP ?? "", c, grace);
  await Promise.all(running.filter((c) => !sidecars.includes(c.containerName)).map((c) => stop(c, graceSeconds)));
  for (const name of sidecars) {
    const left = Math.max(graceSeconds - Math.floor((Date.now() - started) / 1000), Math.min(graceSeconds, MIN_GRACE_AFTER_PRESTOP));
    for (const c of running.filter((x) => x.containerName === name)) await stop(c, left);
  }
  await Promise.all(containers.map((c) => runtime.removeContainer(c.id)));
  await deps.network.tearDown(uid);
  await removePodDir(deps.rootDir, uid);
}

/** Pod uids that have a directory under <rootDir>/pods. */
export async function podDirs(rootDir: string): Promise<string[]> {
  try {
    return await readdir(join(rootDir, "pods"));
  } catch {
    return [];
  }
}

/**
 * Removes everything that belongs to pods `owned` does not claim: runtime containers (stopped
 * first), network state, pod directories. Returns the uids cleaned up.
 */
export async function removeOrphans(deps: TeardownDeps, owned: (uid: string) => boolean): Promise<string[]> {
  const containers = await deps.runtime.listContainers();
  const uids = new Set<string>();
  for (const c of containers) if (!owned(c.podUid)) uids.add(c.podUid);
  for (const uid of await deps.network.list()) if (!owned(uid)) uids.add(uid);
  for (const uid of await podDirs(deps.rootDir)) if (!owned(uid)) uids.add(uid);
  for (const uid of uids) {
    const mine = containers.filter((c) => c.podUid === uid);
    deps.log.info({ podUid: uid, containers: mine.length }, "removing what no pod on this node owns");
    try {
      await teardownPod(deps, uid, mine, ORPHAN_GRACE_SECONDS);
    } catch (err) {
      deps.log.warn({ podUid: uid, err: String(err) }, "could not remove an orphaned pod; will retry at the next start");
    }
  }
  return [...uids];
}
