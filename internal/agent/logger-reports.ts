// What the agent does with a container logger's report (runtime/containerd/logger/reports.ts):
// a failed write to a container's log, or writing working again. The report names the log
// file; the runtime's containers say whose it is. Each becomes a warning in the agent's log and
// a Warning event on the pod (`kubectl describe pod` shows it), so lost output is never silent.
import { create } from "@bufbuild/protobuf";
import { PodSchema } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { EventRecorder } from "../client/events.ts";
import type { Logger } from "../log/log.ts";
import type { ContainerRuntime } from "../runtime/runtime.ts";

export interface LoggerReportDeps {
  runtime: Pick<ContainerRuntime, "listContainers">;
  recorder?: EventRecorder;
  log: Logger;
}

/** The event reason of a report: writes failing, or working again after a loss. */
export const LOG_WRITE_FAILED = "ContainerLogWriteFailed";
export const LOG_WRITE_RECOVERED = "ContainerLogWriteRecovered";

export function createLoggerReportHandler(deps: LoggerReportDeps): (report: { logPath: string; message: string }) => Promise<void> {
  return async ({ logPath, message }) => {
    const c = (await deps.runtime.listContainers().catch(() => [])).find((x) => x.logPath === logPath);
    deps.log.warn({ pod: c ? `${c.podNamespace}/${c.podName}` : undefined, container: c?.containerName, attempt: c?.attempt, logPath, problem: message }, "container logger: writing the container's log failed");
    if (!c || !deps.recorder) return;
    const pod = create(PodSchema, { metadata: { name: c.podName, namespace: c.podNamespace, uid: c.podUid } });
    const recovered = message.startsWith("writing again");
    deps.recorder.event(pod, "Warning", recovered ? LOG_WRITE_RECOVERED : LOG_WRITE_FAILED, `container ${c.containerName}: ${message}`);
  };
}
