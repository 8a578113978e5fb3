// What a pass of syncPod reports: the pod's containers as the runtime lists them, and the pod's
// status computed from them (termination messages read once per exited instance), written
// through the status manager only when it changed.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerInfo } from "../runtime/runtime.ts";
import type { PodWorkerDeps } from "./pod-worker.ts";
import { computePodStatus } from "./pod-status.ts";
import type { PodState } from "./state.ts";
import { readTerminationMessage, terminationLogPath } from "./termination-message.ts";

export interface PodReporter {
  podContainers(uid: string): Promise<ContainerInfo[]>;
  /** Reads the termination message of every exited instance not read yet. */
  loadTerminationMessages(state: PodState, containers: ContainerInfo[]): Promise<void>;
  /** The pod's status from `containers`; the stored pod when written (or unchanged). */
  writeStatus(state: PodState, containers: ContainerInfo[], podIP: string): Promise<Pod | undefined>;
}

export function createPodReporter(deps: PodWorkerDeps): PodReporter {
  const { runtime } = deps;

  async function podContainers(uid: string): Promise<ContainerInfo[]> {
    return (await runtime.listContainers()).filter((c) => c.podUid === uid);
  }

  /** Reads the termination message of every exited instance not read yet (once: it cannot change). */
  async function loadTerminationMessages(state: PodState, containers: ContainerInfo[]): Promise<void> {
    const spec = state.pod.spec;
    for (const info of containers) {
      if (info.state !== "exited" || state.terminationMessages.has(info.id)) continue;
      const c = spec?.containers.find((x) => x.name === info.containerName) ?? spec?.initContainers.find((x) => x.name === info.containerName);
      if (!c) continue;
      const file = terminationLogPath(deps.rootDir, state.uid, c.name, info.attempt);
      state.terminationMessages.set(info.id, await readTerminationMessage(c, info, file));
    }
  }

  async function writeStatus(state: PodState, containers: ContainerInfo[], podIP: string): Promise<Pod | undefined> {
    await loadTerminationMessages(state, containers);
    return deps.status.sync(state.pod, (base) =>
      computePodStatus({
        pod: base,
        state,
        containers,
        hostIP: deps.hostIP(),
        podIP,
        runtimeName: deps.runtimeName(),
        probes: deps.probes,
        now: new Date(),
      }),
    );
  }

  return { podContainers, loadTerminationMessages, writeStatus };
}
