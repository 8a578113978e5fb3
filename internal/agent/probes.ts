// The prober: one worker per (running container, probe kind) — liveness, readiness, startup —
// each on its own timer: first run initialDelaySeconds after the container started, then every
// periodSeconds, each run bounded by timeoutSeconds. A result flips after successThreshold
// successes or failureThreshold failures in a row.
//
//   startup    until it succeeds, liveness and readiness do not run; failing kills the container
//   liveness   starts as success; failing kills the container (the pod worker restarts it)
//   readiness  starts as failure; its result is the container's `ready`, hence the pod's Ready
//
// Results are kept per container id: a restarted container starts over.
import type { Container, Pod, Probe } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Logger } from "../log/log.ts";
import type { ContainerInfo, ContainerRuntime } from "../runtime/runtime.ts";
import type { ProbeResults } from "./pod-status.ts";
import { runProbe } from "./probe-check.ts";

export type ProbeKind = "liveness" | "readiness" | "startup";

export interface ProbeManagerOptions {
  runtime: ContainerRuntime;
  log: Logger;
  /** A result changed: the pod's status should be recomputed. */
  onChange(uid: string): void;
  /** A liveness or startup probe failed for good: stop the container (it counts as a restart). */
  onKill(uid: string, container: string, containerId: string, message: string, graceSeconds: number): void;
  /** How long a probe "second" is (tests shorten it). Default 1000. */
  secondMs?: number;
  /** Every probe run's outcome (metrics). */
  onResult?(pod: Pod, container: string, kind: ProbeKind, success: boolean): void;
}

export interface ProbeManager extends ProbeResults {
  /** Runs workers for the pod's running containers that have probes, and stops all others. */
  sync(pod: Pod, podIP: string, running: ContainerInfo[]): void;
  /** Stops every worker of the pod. */
  removePod(uid: string): void;
  stop(): void;
}

interface Worker {
  kind: ProbeKind;
  containerId: string;
  result: boolean;
  successes: number;
  failures: number;
  timer?: ReturnType<typeof setTimeout>;
  /** Stopped for good (container gone), or done (startup succeeded, container killed). */
  stopped: boolean;
  done: boolean;
}

function probeOf(c: Container, kind: ProbeKind): Probe | undefined {
  return kind === "liveness" ? c.livenessProbe : kind === "readiness" ? c.readinessProbe : c.startupProbe;
}

const KINDS: ProbeKind[] = ["startup", "liveness", "readiness"];
const label: Record<ProbeKind, string> = { liveness: "Liveness", readiness: "Readiness", startup: "Startup" };

export function createProbeManager(opts: ProbeManagerOptions): ProbeManager {
  const secondMs = opts.secondMs ?? 1000;
  const workers = new Map<string, Worker>();
  const pods = new Map<string, { pod: Pod; podIP: string }>();
  const key = (uid: string, name: string, kind: ProbeKind) => `${uid}/${name}/${kind}`;

  /** A probe's result for this container instance; false while no worker has one. */
  function result(uid: string, name: string, id: string, kind: ProbeKind): boolean {
    const w = workers.get(key(uid, name, kind));
    return w !== undefined && w.containerId === id && w.result;
  }

  function stopWorker(k: string): void {
    const w = workers.get(k);
    if (!w) return;
    w.stopped = true;
    clearTimeout(w.timer);
    workers.delete(k);
  }

  function startWorker(uid: string, c: Container, info: ContainerInfo, kind: ProbeKind, probe: Probe, known: boolean): void {
    const k = key(uid, c.name, kind);
    const w: Worker = { kind, containerId: info.id, result: kind === "liveness" || known, successes: 0, failures: 0, stopped: false, done: false };
    workers.set(k, w);
    const periodMs = Math.max(1, probe.periodSeconds || 10) * secondMs;
    const timeoutMs = Math.max(1, probe.timeoutSeconds || 1) * secondMs;
    const successThreshold = Math.max(1, probe.successThreshold || 1);
    const failureThreshold = Math.max(1, probe.failureThreshold || 3);
    const started = info.startedAt?.getTime() ?? Date.now();
    const firstDelay = Math.max(0, started + probe.initialDelaySeconds * secondMs - Date.now());
    const log = opts.log.child({ podUid: uid, container: c.name, probe: kind });

    const schedule = (ms: number) => {
      if (!w.stopped && !w.done) w.timer = setTimeout(() => void tick(), ms);
    };

    const tick = async () => {
      // Liveness and readiness wait for the startup probe to succeed.
      if (kind !== "startup" && c.startupProbe && !result(uid, c.name, w.containerId, "startup")) return schedule(periodMs);
      const target = pods.get(uid);
      if (!target) return;
      const outcome = await runProbe(probe, { runtime: opts.runtime, containerId: w.containerId, container: c, podIP: target.podIP }, timeoutMs);
      if (w.stopped) return;
      opts.onResult?.(target.pod, c.name, kind, outcome.success);
      const before = w.result;
      if (outcome.success) {
        w.failures = 0;
        w.successes++;
        if (w.successes >= successThreshold) w.result = true;
      } else {
        w.successes = 0;
        w.failures++;
        log.debug({ failures: w.failures, message: outcome.message }, "probe failed");
        if (w.failures >= failureThreshold) w.result = false;
      }
      if (kind === "startup" && w.result) w.done = true;
      // Startup's result starts false: only failureThreshold failures in a row kill, not the first.
      const failedForGood = !outcome.success && w.failures >= failureThreshold;
      if ((kind === "liveness" || kind === "startup") && failedForGood) {
        w.done = true;
        const grace = Number(probe.terminationGracePeriodSeconds ?? target.pod.spec?.terminationGracePeriodSeconds ?? 30n);
        const message = `${label[kind]} probe failed: ${outcome.message}`;
        log.info({ message }, "container failed its probe; it will be restarted");
        opts.onKill(uid, c.name, w.containerId, message, grace);
      } else if (before !== w.result) {
        log.info({ ready: w.result }, "probe result changed");
        opts.onChange(uid);
      }
      schedule(periodMs);
    };
    schedule(firstDelay);
  }

  return {
    sync(pod, podIP, running) {
      const uid = pod.metadata!.uid;
      pods.set(uid, { pod, podIP });
      const wanted = new Set<string>();
      // Sidecars (init containers with restartPolicy Always) are probed as app containers.
      const probed = [...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always"), ...(pod.spec?.containers ?? [])];
      for (const c of probed) {
        const info = running.find((r) => r.containerName === c.name && r.state === "running");
        if (!info) continue;
        for (const kind of KINDS) {
          const probe = probeOf(c, kind);
          if (!probe) continue;
          const k = key(uid, c.name, kind);
          wanted.add(k);
          const w = workers.get(k);
          if (w && w.containerId === info.id) continue;
          stopWorker(k);
          // A container this agent adopted keeps what its status already said (ready, started)
          // until a probe says otherwise: an agent restart must not flap Ready.
          const st = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])].find((s) => s.name === c.name && s.containerId.endsWith(`://${info.id}`));
          const known = kind === "readiness" ? st?.ready === true : kind === "startup" ? st?.started === true : false;
          startWorker(uid, c, info, kind, probe, known);
        }
      }
      for (const k of [...workers.keys()]) if (k.startsWith(`${uid}/`) && !wanted.has(k)) stopWorker(k);
    },
    removePod(uid) {
      for (const k of [...workers.keys()]) if (k.startsWith(`${uid}/`)) stopWorker(k);
      pods.delete(uid);
    },
    stop() {
      for (const k of [...workers.keys()]) stopWorker(k);
      pods.clear();
    },
    ready: (uid, name, id) => result(uid, name, id, "readiness"),
    started: (uid, name, id) => result(uid, name, id, "startup"),
  };
}
