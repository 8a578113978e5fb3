// The one-word status of a pod, as `get pods` shows it: the most telling reason among the pod's
// phase, its init containers and its containers (ContainerCreating, CrashLoopBackOff,
// Init:0/1, Completed, Terminating, ...).
import type { ContainerState, Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";

function terminatedReason(t: NonNullable<ContainerState["terminated"]>): string {
  if (t.reason) return t.reason;
  return t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`;
}

function initStatus(pod: Pod): string | undefined {
  const statuses = pod.status?.initContainerStatuses ?? [];
  const total = pod.spec?.initContainers.length ?? 0;
  for (let i = 0; i < statuses.length; i++) {
    const st = statuses[i].state;
    if (st?.terminated && st.terminated.exitCode === 0) continue;
    if (st?.terminated) return `Init:${terminatedReason(st.terminated)}`;
    if (st?.waiting?.reason && st.waiting.reason !== "PodInitializing") return `Init:${st.waiting.reason}`;
    return `Init:${i}/${total}`;
  }
  return undefined;
}

export function podStatus(pod: Pod): string {
  if (pod.metadata?.deletionTimestamp) return pod.status?.reason === "NodeLost" ? "Unknown" : "Terminating";
  let reason = pod.status?.reason || pod.status?.phase || "Unknown";
  const init = initStatus(pod);
  if (init) return init;
  let running = false;
  const statuses = pod.status?.containerStatuses ?? [];
  for (let i = statuses.length - 1; i >= 0; i--) {
    const cs = statuses[i];
    const st = cs.state;
    if (st?.waiting?.reason) reason = st.waiting.reason;
    else if (st?.terminated) reason = terminatedReason(st.terminated);
    else if (st?.running && cs.ready) running = true;
  }
  if (reason === "Completed" && running) reason = "Running";
  return reason;
}

/** "ready/total" containers. */
export function podReady(pod: Pod): string {
  const ready = (pod.status?.containerStatuses ?? []).filter((c) => c.ready).length;
  return `${ready}/${pod.spec?.containers.length ?? 0}`;
}

export function podRestarts(pod: Pod): number {
  return (pod.status?.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0);
}
