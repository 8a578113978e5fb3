// Container lifecycle hooks (spec.containers[].lifecycle): postStart runs right after the
// container starts, preStop before it is sent SIGTERM. A hook is exec (in the container, exit 0),
// httpGet (a status from 200 to 399, to the pod's IP) or sleep (in the agent). preStop's time
// counts against the termination grace period, as with the kubelet; whatever is left (at least
// MIN_GRACE_AFTER_PRESTOP seconds) is the container's time between SIGTERM and SIGKILL.
import type { Container, LifecycleHandler, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Logger } from "../log/log.ts";
import type { ContainerInfo, ContainerRuntime } from "../runtime/runtime.ts";
import { httpGetAction, type ProbeOutcome } from "./probe-check.ts";

/** The kubelet's floor for the grace left after a preStop hook used up the period. */
export const MIN_GRACE_AFTER_PRESTOP = 2;
/** postStart has no grace period to bound it: exec and httpGet hooks get this long. */
export const POST_START_TIMEOUT_MS = 120_000;

export interface HookTarget {
  runtime: ContainerRuntime;
  containerId: string;
  container: Container;
  podIP: string;
}

/** Runs one hook action, bounded by timeoutMs (a sleep longer than that is cut short). */
export async function runHook(handler: LifecycleHandler, target: HookTarget, timeoutMs: number): Promise<ProbeOutcome> {
  try {
    if (handler.exec) {
      const res = await target.runtime.exec(target.containerId, handler.exec.command, timeoutMs);
      if (res.exitCode === 0) return { success: true, message: "" };
      const out = `${res.stdout}${res.stderr}`.trim();
      return { success: false, message: `command ${JSON.stringify(handler.exec.command)} exited with ${res.exitCode}${out ? `: ${out}` : ""}` };
    }
    if (handler.httpGet) return await httpGetAction(handler.httpGet, target, timeoutMs);
    if (handler.sleep) {
      const ms = Math.min(Number(handler.sleep.seconds) * 1000, timeoutMs);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { success: true, message: "" };
    }
    return { success: false, message: "hook has no exec, httpGet or sleep action" };
  } catch (err) {
    return { success: false, message: err instanceof Error ? err.message : String(err) };
  }
}

export interface StopDeps {
  runtime: ContainerRuntime;
  log: Logger;
}

/**
 * Stops one container the way a user expects from its spec: its preStop hook first (if it has
 * one and is running), then SIGTERM with what is left of the grace period, then SIGKILL.
 */
export async function stopWithHooks(deps: StopDeps, pod: Pod | undefined, podIP: string, info: ContainerInfo, graceSeconds: number): Promise<void> {
  const container = [...(pod?.spec?.containers ?? []), ...(pod?.spec?.initContainers ?? [])].find((c) => c.name === info.containerName);
  const preStop = container?.lifecycle?.preStop;
  let grace = graceSeconds;
  if (preStop && info.state === "running" && graceSeconds > 0) {
    const started = Date.now();
    const outcome = await runHook(preStop, { runtime: deps.runtime, containerId: info.id, container: container!, podIP }, graceSeconds * 1000);
    if (!outcome.success) deps.log.warn({ container: info.containerName, id: info.id, message: outcome.message }, "preStop hook failed");
    const used = Math.floor((Date.now() - started) / 1000);
    grace = Math.max(graceSeconds - used, MIN_GRACE_AFTER_PRESTOP);
  }
  await deps.runtime.stopContainer(info.id, grace);
}
