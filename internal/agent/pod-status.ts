// Computes a pod's status from what the node observes: the runtime's containers of the pod, the
// agent's own memory (why a container waits, what killed it), probe results and the network.
// Pure. The rules are Kubernetes': phase from the containers' states and the restart policy,
// conditions whose lastTransitionTime moves only when their status flips, restartCount from
// the container's attempt label.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ConditionSchema, type Condition } from "../../gen/skiff/v1alpha1/meta_pb.js";
import {
  ContainerStateSchema,
  ContainerStatusSchema,
  PodIPSchema,
  PodStatusSchema,
  type Container,
  type ContainerState,
  type ContainerStatus,
  type Pod,
  type PodStatus,
} from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ContainerInfo } from "../runtime/runtime.ts";
import type { PodState } from "./state.ts";

/**
 * What a container's probes have found, asked only for a probe its spec has. False until the
 * probe has passed for that container instance, also for a container the prober has not seen
 * yet: a status written before the prober started (a new pod's first status) says not ready.
 */
export interface ProbeResults {
  ready(uid: string, container: string, containerId: string): boolean;
  started(uid: string, container: string, containerId: string): boolean;
}

export interface StatusInput {
  pod: Pod;
  state: PodState;
  /** The runtime's containers of this pod (any order). */
  containers: ContainerInfo[];
  hostIP: string;
  podIP: string;
  /** Prefix of container ids: "containerd" gives "containerd://<id>". */
  runtimeName: string;
  probes: ProbeResults;
  now: Date;
}

const TERMINAL = new Set(["Succeeded", "Failed"]);

export function isTerminal(pod: Pod): boolean {
  return TERMINAL.has(pod.status?.phase ?? "");
}

/** Instances of each container, newest first (highest attempt, then latest created). */
export function instancesByName(containers: ContainerInfo[]): Map<string, ContainerInfo[]> {
  const out = new Map<string, ContainerInfo[]>();
  for (const c of containers) {
    let list = out.get(c.containerName);
    if (!list) out.set(c.containerName, (list = []));
    list.push(c);
  }
  for (const list of out.values()) list.sort((a, b) => b.attempt - a.attempt || b.createdAt.getTime() - a.createdAt.getTime());
  return out;
}

/** An init container with restartPolicy Always: runs beside the app containers. */
export const isSidecar = (c: Container) => c.restartPolicy === "Always";

/** Whether an exited container is started again (init containers restart only on failure). */
export function shouldRestart(restartPolicy: string, exitCode: number | undefined, isInit: boolean): boolean {
  const policy = restartPolicy || "Always";
  if (policy === "Never") return false;
  if (policy === "OnFailure" || isInit) return exitCode !== 0;
  return true;
}

export function terminationReason(c: ContainerInfo): string {
  if (c.lost) return "Unknown"; // as Kubernetes reports a container whose end nobody saw
  if (c.oomKilled) return "OOMKilled";
  return c.exitCode === 0 ? "Completed" : "Error";
}

/** The terminated message of a lost container (ContainerInfo.lost). */
export const LOST_MESSAGE = "the container's process was gone, with no exit status (the node restarted, or the runtime's shim for it was killed)";

const ts = (d: Date | undefined): Timestamp | undefined => (d ? timestampFromDate(d) : undefined);

function terminated(c: ContainerInfo, runtimeName: string, state: PodState): ContainerState {
  return create(ContainerStateSchema, {
    terminated: {
      exitCode: c.exitCode ?? -1,
      reason: terminationReason(c),
      message: state.terminationMessages.get(c.id) || (state.killMessages.get(c.id) ?? (c.lost ? LOST_MESSAGE : "")),
      startedAt: ts(c.startedAt),
      finishedAt: ts(c.finishedAt),
      containerId: `${runtimeName}://${c.id}`,
    },
  });
}

function waitingState(reason: string, message = ""): ContainerState {
  return create(ContainerStateSchema, { waiting: { reason, message } });
}

function containerStatus(input: StatusInput, spec: Container, instances: ContainerInfo[], isInit: boolean, initialized: boolean): ContainerStatus {
  const { state, runtimeName, probes } = input;
  const uid = state.uid;
  const [cur, prev] = instances;
  const rec = state.containers.get(spec.name);
  const status = create(ContainerStatusSchema, {
    name: spec.name,
    image: spec.image,
    imageId: cur?.imageId ?? "",
    containerId: cur ? `${runtimeName}://${cur.id}` : "",
    restartCount: cur?.attempt ?? 0,
    ready: false,
    started: false,
  });
  if (cur?.state === "running" && rec?.postStartRunning === cur.id) {
    status.state = waitingState("ContainerCreating", "postStart hook running");
    if (prev) status.lastState = terminated(prev, runtimeName, state);
  } else if (cur?.state === "running") {
    status.state = create(ContainerStateSchema, { running: { startedAt: ts(cur.startedAt) } });
    if (prev) status.lastState = terminated(prev, runtimeName, state);
    // Init containers are not probed; sidecars are, as app containers.
    const probed = !isInit || isSidecar(spec);
    status.started = !probed || !spec.startupProbe || probes.started(uid, spec.name, cur.id);
    status.ready = probed && status.started && (!spec.readinessProbe || probes.ready(uid, spec.name, cur.id));
  } else if (cur?.state === "exited") {
    if (rec?.waiting) {
      status.state = waitingState(rec.waiting.reason, rec.waiting.message);
      status.lastState = terminated(cur, runtimeName, state);
    } else {
      status.state = terminated(cur, runtimeName, state);
      if (prev) status.lastState = terminated(prev, runtimeName, state);
      status.ready = isInit && !isSidecar(spec) && cur.exitCode === 0;
    }
  } else {
    const w = rec?.waiting ??
      (state.setupError
        ? { reason: "ContainerCreating", message: state.setupError }
        : { reason: isInit || initialized ? "ContainerCreating" : "PodInitializing", message: "" });
    status.state = waitingState(w.reason, w.message);
    if (prev) status.lastState = terminated(prev, runtimeName, state);
  }
  return status;
}

const completed = (s: ContainerStatus) => s.state?.terminated !== undefined && s.state.terminated.exitCode === 0;

/** Kubernetes' pod phase rules. */
export function podPhase(pod: Pod, init: ContainerStatus[], app: ContainerStatus[], initialized: boolean): string {
  const prev = pod.status?.phase ?? "";
  if (TERMINAL.has(prev)) return prev;
  const policy = pod.spec?.restartPolicy || "Always";
  if (!initialized) {
    const failed = init.some((s) => s.state?.terminated && s.state.terminated.exitCode !== 0);
    return failed && policy === "Never" ? "Failed" : "Pending";
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const s of app) {
    if (s.state?.running) running++;
    else if (s.state?.terminated) {
      stopped++;
      if (s.state.terminated.exitCode === 0) succeeded++;
    } else if (s.lastState?.terminated) stopped++; // waiting to restart
    else waiting++;
  }
  if (waiting > 0) return "Pending";
  if (running > 0) return "Running";
  if (stopped > 0) {
    if (policy === "Always") return "Running";
    if (stopped === succeeded) return "Succeeded";
    if (policy === "Never") return "Failed";
    return "Running";
  }
  return "Pending";
}

function requestsAndLimits(c: Container): { requests: Record<string, string>; limits: Record<string, string> } {
  return { requests: c.resources?.requests ?? {}, limits: c.resources?.limits ?? {} };
}

/** Guaranteed, Burstable or BestEffort, by Kubernetes' rules over cpu and memory. */
export function qosClass(pod: Pod): string {
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  let any = false;
  let guaranteed = true;
  for (const c of all) {
    const { requests, limits } = requestsAndLimits(c);
    for (const r of ["cpu", "memory"]) {
      const req = requests[r] ?? limits[r];
      if (req !== undefined || limits[r] !== undefined) any = true;
      if (limits[r] === undefined || req !== limits[r]) guaranteed = false;
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

function condition(old: Condition[], type: string, status: string, now: Date, reason = "", message = ""): Condition {
  const prev = old.find((c) => c.type === type);
  const lastTransitionTime = prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : timestampFromDate(now);
  return create(ConditionSchema, { type, status, reason, message, lastTransitionTime });
}

const OURS = new Set(["PodScheduled", "Initialized", "ContainersReady", "Ready"]);

export function computePodStatus(input: StatusInput): PodStatus {
  const { pod, state, now } = input;
  const spec = pod.spec!;
  const old = pod.status ?? create(PodStatusSchema);
  const instances = instancesByName(input.containers);
  // Re-initializing in a new sandbox (reinit.ts): the app containers that ran before do not count,
  // nor do init instances older than the sandbox.
  const floors = state.initFloors;
  const appStarted = !floors && spec.containers.some((c) => (instances.get(c.name) ?? []).length > 0);
  const initStatuses = spec.initContainers.map((c) => containerStatus(input, c, instances.get(c.name) ?? [], true, false));
  // A sidecar counts as done with initialization once it runs and its startup probe passed.
  const sidecar = (i: number) => isSidecar(spec.initContainers[i]!);
  const current = (s: ContainerStatus) => s.containerId !== "" && s.restartCount >= (floors?.[s.name] ?? 0);
  const initDone = (s: ContainerStatus, i: number) => current(s) && (sidecar(i) ? s.state?.running !== undefined && s.started : completed(s));
  const initialized = appStarted || initStatuses.every(initDone);
  const appStatuses = spec.containers.map((c) => containerStatus(input, c, instances.get(c.name) ?? [], false, initialized));
  const phase = podPhase(pod, initStatuses.filter((_, i) => !sidecar(i)), appStatuses, initialized);

  const terminal = TERMINAL.has(phase);
  const unready = [...initStatuses.filter((_, i) => sidecar(i)), ...appStatuses].filter((s) => !s.ready).map((s) => s.name);
  const incomplete = initStatuses.filter((s, i) => !initDone(s, i)).map((s) => s.name);
  const conds: Condition[] = [condition(old.conditions, "PodScheduled", "True", now)];
  conds.push(
    initialized
      ? condition(old.conditions, "Initialized", "True", now)
      : condition(old.conditions, "Initialized", "False", now, "ContainersNotInitialized", `containers with incomplete status: [${incomplete.join(" ")}]`),
  );
  for (const type of ["ContainersReady", "Ready"]) {
    if (terminal) conds.push(condition(old.conditions, type, "False", now, "PodCompleted"));
    else if (unready.length === 0) conds.push(condition(old.conditions, type, "True", now));
    else conds.push(condition(old.conditions, type, "False", now, "ContainersNotReady", `containers with unready status: [${unready.join(" ")}]`));
  }
  for (const c of old.conditions) if (!OURS.has(c.type)) conds.push(c);

  const podIP = input.podIP || old.podIp;
  return create(PodStatusSchema, {
    phase,
    conditions: conds,
    message: old.message,
    reason: old.reason,
    hostIp: input.hostIP,
    podIp: podIP,
    podIps: podIP ? [create(PodIPSchema, { ip: podIP })] : [],
    startTime: old.startTime ?? ts(state.startTime ?? now),
    containerStatuses: appStatuses,
    initContainerStatuses: initStatuses,
    qosClass: qosClass(pod),
    nominatedNodeName: old.nominatedNodeName,
  });
}
