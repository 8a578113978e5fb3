// One container of a pod toward "running" (or "completed", per the restart policy), for
// syncPod: a kill a probe asked for, a restart after CrashLoopBackOff, a new attempt (image,
// create, start, postStart hook), retries after start errors; removing an instance with its
// log and termination message.
import { rm } from "node:fs/promises";
import type { Container } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerInfo } from "../runtime/runtime.ts";
import type { ConfigContext } from "./container-config.ts";
import type { FaultReporter } from "./faults.ts";
import { POST_START_TIMEOUT_MS, runHook, stopWithHooks } from "./hooks.ts";
import { removeLogFiles } from "./log-files.ts";
import { isSidecar, shouldRestart } from "./pod-status.ts";
import type { PodWorkerDeps } from "./pod-worker.ts";
import { ContainerStartError, startContainer } from "./start-container.ts";
import { containerRecord, crashBackoff, nextBackoff, podAddress, type PodState } from "./state.ts";
import { terminationLogPath } from "./termination-message.ts";
import { VolumeMountError } from "./volumes/index.ts";

/** Go-style durations, as Kubernetes prints them: "10s", "1m20s", "5m0s", "250ms". */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  return `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
}

export function createContainerSync(deps: PodWorkerDeps, faults: FaultReporter) {
  const { runtime, log } = deps;
  /** Where httpGet hooks go: the pod's IP (as reported, if the agent restarted since setting it up). */
  const podIPOf = (state: PodState) => podAddress(state, () => deps.hostIP());
  const startDeps = { runtime, imagePullBackoff: deps.imagePull, credentials: deps.credentials, insecureRegistries: deps.insecureRegistries };

  async function removeInstance(state: PodState, c: ContainerInfo): Promise<void> {
    await runtime.removeContainer(c.id);
    // Its log goes too, as kubelet's does: a crash loop must not fill the disk attempt by attempt.
    await removeLogFiles(c.logPath);
    state.killMessages.delete(c.id);
    state.terminationMessages.delete(c.id);
    await rm(terminationLogPath(deps.rootDir, state.uid, c.containerName, c.attempt), { force: true });
    state.lostReported.delete(c.id);
  }

  /** One container toward "running" (or "completed", per the restart policy). */
  async function ensureContainer(
    state: PodState,
    c: Container,
    isInit: boolean,
    instances: ContainerInfo[],
    ctx: ConfigContext | Error,
    noteRetry: (at: number) => void,
    /** An init container in a new sandbox: instances below this attempt run again (reinit.ts). */
    floor = 0,
  ): Promise<void> {
    const pod = state.pod;
    const m = pod.metadata!;
    const rec = containerRecord(state, c.name);
    let cur: ContainerInfo | undefined = instances[0];
    const older = instances.slice(1);
    const now = Date.now();

    if (cur?.state === "running") {
      const kill = state.killRequests.get(cur.id);
      if (!kill) return;
      state.killRequests.delete(cur.id);
      state.killMessages.set(cur.id, kill.message);
      log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, container: c.name, reason: kill.message }, "killing container");
      await stopWithHooks(deps, pod, podIPOf(state), cur, kill.graceSeconds);
      cur = await runtime.containerStatus(cur.id);
      if (cur?.state !== "exited") return;
    }
    if (cur?.state === "unknown") return;

    let attempt = 0;
    if (cur?.state === "created") {
      // Created but never started (the agent stopped in between): start that attempt afresh.
      attempt = Math.max(cur.attempt, floor);
      await removeInstance(state, cur);
      older.shift(); // the instance before it stays, for logs --previous
    } else if (cur?.state === "exited") {
      const rerun = cur.attempt < floor; // an init container of the old sandbox: runs again, no back-off
      const restart = rerun || isSidecar(c) || shouldRestart(pod.spec!.restartPolicy, cur.exitCode, isInit);
      if (cur.lost && !state.lostReported.has(cur.id)) {
        state.lostReported.add(cur.id);
        faults.containerLost(pod, cur, restart);
      }
      if (!restart) {
        rec.waiting = undefined;
        return;
      }
      // CrashLoopBackOff, counted once per exited instance (crashBackoff: the first is free).
      if (!rerun && rec.crash?.containerId !== cur.id) {
        const finished = cur.finishedAt?.getTime() ?? now;
        const ran = finished - (cur.startedAt?.getTime() ?? finished);
        rec.crash = { ...crashBackoff(rec.crash, deps.crashLoop, finished, ran), containerId: cur.id };
      }
      if (!rerun && rec.crash && now < rec.crash.until) {
        rec.waiting = {
          reason: "CrashLoopBackOff",
          message: `back-off ${formatDelay(rec.crash.delayMs)} restarting failed container=${c.name} pod=${m.name}_${m.namespace}(${m.uid})`,
        };
        noteRetry(rec.crash.until);
        return;
      }
      attempt = cur.attempt + 1;
    }
    if (rec.retry && now < rec.retry.until) {
      noteRetry(rec.retry.until);
      return;
    }

    if (ctx instanceof VolumeMountError) {
      rec.waiting = { reason: "ContainerCreating", message: ctx.message };
      return;
    }
    try {
      if (ctx instanceof Error) throw new ContainerStartError("CreateContainerConfigError", ctx.message);
      const id = await startContainer(startDeps, pod, c, attempt, rec, ctx);
      log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, container: c.name, attempt, id }, "container started");
      if (c.lifecycle?.postStart && (!isInit || isSidecar(c))) await postStart(state, c, id);
      rec.waiting = undefined;
      rec.retry = undefined;
      // Keep the instance before this one for `logs --previous`; older ones go.
      for (const old of older) await removeInstance(state, old);
    } catch (err) {
      if (!(err instanceof ContainerStartError)) throw err;
      rec.waiting = { reason: err.reason, message: err.message };
      log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, container: c.name, reason: err.reason, message: err.message }, "container could not start");
      if (err.retryAt !== undefined) noteRetry(err.retryAt);
      else {
        rec.retry = nextBackoff(rec.retry, deps.startRetry, Date.now());
        noteRetry(rec.retry.until);
      }
    }
  }

  /**
   * Runs the container's postStart hook; this pass (hence the pod's status) waits for it, so the
   * container is not reported Running before it returns. A failed hook kills the container.
   */
  async function postStart(state: PodState, c: Container, id: string): Promise<void> {
    const pod = state.pod;
    const m = pod.metadata!;
    const target = { runtime, containerId: id, container: c, podIP: podIPOf(state) };
    const rec = containerRecord(state, c.name);
    rec.postStartRunning = id;
    let outcome;
    try {
      outcome = await runHook(c.lifecycle!.postStart!, target, POST_START_TIMEOUT_MS);
    } finally {
      rec.postStartRunning = undefined;
    }
    if (outcome.success) return;
    const message = `PostStartHook failed: ${outcome.message}`;
    log.info({ pod: `${m.namespace}/${m.name}`, podUid: m.uid, container: c.name, id, message }, "postStart hook failed; killing the container");
    deps.recorder?.event(pod, "Warning", "FailedPostStartHook", `${c.name}: ${outcome.message}`);
    state.killMessages.set(id, message);
    await runtime.stopContainer(id, Number(pod.spec?.terminationGracePeriodSeconds ?? 30n));
  }

  return { ensureContainer, removeInstance };
}
