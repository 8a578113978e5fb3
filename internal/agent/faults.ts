// Telling people about faults the agent recovers from on its own, so that a restart nobody asked
// for is never silent: a container whose process went away unseen (a reboot, a killed shim) and
// a pod network set up again because its namespace was gone. One log line and one Event each.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { EventRecorder } from "../client/events.ts";
import type { Logger } from "../log/log.ts";
import type { ContainerInfo } from "../runtime/runtime.ts";

export interface FaultReporter {
  /** A container's instance is lost (ContainerInfo.lost); `restarting` says what happens next. */
  containerLost(pod: Pod, c: ContainerInfo, restarting: boolean): void;
  /** The pod's network was made again (new namespace, CNI ADD) after its namespace was gone. */
  networkRestored(pod: Pod, previousIP: string, ip: string): void;
}

export function createFaultReporter(opts: { log: Logger; recorder?: EventRecorder }): FaultReporter {
  const { log, recorder } = opts;
  const name = (pod: Pod) => `${pod.metadata!.namespace}/${pod.metadata!.name}`;
  return {
    containerLost(pod, c, restarting) {
      const policy = pod.spec?.restartPolicy || "Always";
      const next = restarting ? `starting it again (restartPolicy ${policy})` : `not starting it again (restartPolicy ${policy})`;
      const message = `Container ${c.containerName} is gone without an exit status (the node restarted, or its runtime shim was killed); ${next}`;
      log.warn({ pod: name(pod), container: c.containerName, id: c.id, attempt: c.attempt, restarting }, "container lost: its process and task are gone");
      recorder?.event(pod, "Warning", "ContainerLost", message);
    },
    networkRestored(pod, previousIP, ip) {
      const ips = previousIP && previousIP !== ip ? `; IP ${previousIP} is now ${ip}` : `; IP ${ip}`;
      const message = `Pod network namespace was gone (the node restarted?); set up again${ips}`;
      log.warn({ pod: name(pod), previousIP, ip }, "pod network set up again: its namespace was gone");
      recorder?.event(pod, "Normal", "SandboxChanged", message);
    },
  };
}
