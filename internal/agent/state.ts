// What the agent remembers about each pod between syncs. Only what the runtime and the API
// cannot tell it: back-off timers, why a container could not start, why one was killed. Losing
// it (an agent restart) starts the back-offs over, as a kubelet restart does; everything else is
// rebuilt from the runtime's containers (their labels) and the API's pods.
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { InitFloors } from "./reinit.ts";

export interface Waiting {
  reason: string;
  message: string;
}

/** An exponential back-off: the delay doubles from initialMs up to maxMs. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export interface BackoffState {
  delayMs: number;
  /** Epoch ms before which nothing is tried. */
  until: number;
}

export function nextBackoff(prev: BackoffState | undefined, policy: BackoffPolicy, from: number): BackoffState {
  const delayMs = prev ? Math.min(prev.delayMs * 2, policy.maxMs) : policy.initialMs;
  return { delayMs, until: from + delayMs };
}

/**
 * CrashLoopBackOff as the kubelet counts it: the first exit this agent sees restarts at once (so
 * does the first after a run of resetMs or more); each following one waits initialMs, doubling up
 * to maxMs. It lives in memory only, so a restarted agent (a rebooted node) brings its pods back
 * at once.
 */
export function crashBackoff(prev: BackoffState | undefined, policy: BackoffPolicy & { resetMs: number }, finished: number, ranMs: number): BackoffState {
  if (!prev || ranMs >= policy.resetMs) return { delayMs: 0, until: finished };
  const delayMs = prev.delayMs === 0 ? policy.initialMs : Math.min(prev.delayMs * 2, policy.maxMs);
  return { delayMs, until: finished + delayMs };
}

export interface ContainerRecord {
  /** Why the container is not running, when the runtime cannot say (pull errors, back-off). */
  waiting?: Waiting;
  /** CrashLoopBackOff (crashBackoff): counted once per exited container instance. */
  crash?: BackoffState & { containerId: string };
  /** ImagePullBackOff, for this image. */
  pull?: BackoffState & { image: string; message: string };
  /** Retries after create/start/config errors. */
  retry?: BackoffState;
  /** The id of the instance whose postStart hook is running (it is not Running until done). */
  postStartRunning?: string;
}

export interface PodState {
  uid: string;
  /** The newest version of the pod seen (kept after it disappears from the API, to stop it). */
  pod: Pod;
  network?: { ip: string; netnsPath: string };
  /** Set once, when the agent first starts working on the pod. */
  startTime?: Date;
  containers: Map<string, ContainerRecord>;
  /** Messages for terminated containers the agent killed (liveness), by container id. */
  killMessages: Map<string, string>;
  /** What exited instances left in their termination message file (or log), by container id. */
  terminationMessages: Map<string, string>;
  /** Lost container instances (ContainerInfo.lost) already reported, by id. */
  lostReported: Set<string>;
  /** Containers a probe asked to kill, by container id, with the reason. */
  killRequests: Map<string, { message: string; graceSeconds: number }>;
  /** The network could not be set up: shown on every waiting container. */
  setupError?: string;
  /** The pod finished and its network was released. */
  networkReleased?: boolean;
  /** Since when (epoch ms) the runtime has listed a container of the pod without its state. */
  unreadableSince?: number;
  /** The eviction manager chose this pod: its message (the pod is stopped and fails as Evicted). */
  eviction?: string;
  /** Its sandbox was made anew: the init containers run again (reinit.ts); loaded once from disk. */
  initFloors?: InitFloors;
  initFloorsLoaded?: boolean;
}

export function newPodState(pod: Pod): PodState {
  return { uid: pod.metadata!.uid, pod, containers: new Map(), killMessages: new Map(), terminationMessages: new Map(), lostReported: new Set(), killRequests: new Map() };
}

/** The pod's IP for hooks and probes: the node's for hostNetwork, else as set up (or as last reported, after an agent restart). */
export function podAddress(state: PodState, hostIP: () => string): string {
  return state.pod.spec?.hostNetwork ? hostIP() : state.network?.ip || state.pod.status?.podIp || "";
}

export function containerRecord(state: PodState, name: string): ContainerRecord {
  let rec = state.containers.get(name);
  if (!rec) state.containers.set(name, (rec = {}));
  return rec;
}
