// Ending a pod's run on the node: deleted (stop with grace, tear down, confirm the deletion),
// evicted (stop at once, fail as Evicted), finished (its sidecars stop, last first; its network
// is released).
import { Code, ConnectError } from "@connectrpc/connect";
import type { Result } from "../client/workqueue.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";
import { stopWithHooks } from "./hooks.ts";
import type { PodReporter } from "./pod-report.ts";
import { computePodStatus, isSidecar, isTerminal } from "./pod-status.ts";
import type { PodWorkerDeps } from "./pod-worker.ts";
import { podAddress, type PodState } from "./state.ts";
import { teardownPod } from "./teardown.ts";

export interface PodStopper {
  /** Stops and removes everything of the pod, forgets it; `confirm`: then deletes it with grace 0. */
  terminate(state: PodState, confirm: boolean): Promise<void>;
  releaseNetwork(state: PodState): Promise<void>;
  evictPod(state: PodState): Promise<Result>;
  stopSidecars(state: PodState, containers: ContainerInfo[], podIP: string): Promise<void>;
}

export function createPodStopper(deps: PodWorkerDeps, report: PodReporter, states: Map<string, PodState>): PodStopper {
  const { runtime, log } = deps;
  const { podContainers, loadTerminationMessages } = report;
  const podIPOf = (state: PodState) => podAddress(state, () => deps.hostIP());

  async function terminate(state: PodState, confirm: boolean): Promise<void> {
    const m = state.pod.metadata!;
    const grace = Number(m.deletionGracePeriodSeconds ?? state.pod.spec?.terminationGracePeriodSeconds ?? 30n);
    deps.probes.removePod(state.uid);
    const containers = await podContainers(state.uid);
    log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, containers: containers.length, graceSeconds: grace }, "stopping pod");
    await teardownPod(deps, state.uid, containers, grace, { pod: state.pod, podIP: podIPOf(state) });
    states.delete(state.uid);
    deps.status.forget(state.uid);
    deps.tokens?.forget(state.uid);
    deps.volumes.forget(state.uid);
    if (!confirm) return;
    try {
      await deps.pods.delete(m.namespace, m.name, { gracePeriodSeconds: 0n, uid: m.uid });
      log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid }, "pod stopped; deletion confirmed");
    } catch (err) {
      const code = ConnectError.from(err).code;
      if (code !== Code.NotFound && code !== Code.Aborted) throw err;
    }
  }

  /** Ends the pod's network once it can no longer run anything. */
  async function releaseNetwork(state: PodState): Promise<void> {
    if (state.pod.spec?.hostNetwork || state.network === undefined) return;
    await deps.network.tearDown(state.uid);
    state.network = undefined;
  }

  /** Node pressure: stop at once (hard eviction gives no grace period), then fail the pod. */
  async function evictPod(state: PodState): Promise<Result> {
    const m = state.pod.metadata!;
    deps.probes.removePod(state.uid);
    for (const c of await podContainers(state.uid)) {
      if (c.state === "running" || c.state === "created") await runtime.stopContainer(c.id, 0);
    }
    // What it wrote to its emptyDirs is most likely what filled the disk: give it back now, as the
    // kubelet tears down a terminated pod's volumes (logs stay until the pod is deleted).
    await deps.volumes.removeEmptyDirs(state.pod);
    const containers = await podContainers(state.uid);
    await loadTerminationMessages(state, containers);
    const stored = await deps.status.sync(state.pod, (base) => {
      const s = computePodStatus({ pod: base, state, containers, hostIP: deps.hostIP(), podIP: "", runtimeName: deps.runtimeName(), probes: deps.probes, now: new Date() });
      s.phase = "Failed";
      s.reason = "Evicted";
      s.message = state.eviction!;
      return s;
    });
    log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, message: state.eviction }, "pod evicted");
    if (stored && !isTerminal(stored)) return { requeue: true };
    await releaseNetwork(state);
    state.networkReleased = true;
  }

  /** The app containers are done for good: its sidecars stop too, the last one first. */
  async function stopSidecars(state: PodState, containers: ContainerInfo[], podIP: string): Promise<void> {
    const grace = Number(state.pod.spec?.terminationGracePeriodSeconds ?? 30n);
    for (const c of [...state.pod.spec!.initContainers].reverse()) {
      if (!isSidecar(c)) continue;
      const cur = containers.find((x) => x.containerName === c.name && x.state === "running");
      if (cur) await stopWithHooks(deps, state.pod, podIP, cur, grace);
    }
  }

  return { terminate, releaseNetwork, evictPod, stopSidecars };
}
