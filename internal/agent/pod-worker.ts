// syncPod(uid): one level-triggered pass that moves a pod's containers on this node toward its
// spec, then reports what it sees. The WorkQueue (keyed by pod uid) runs at most one pass per
// pod at a time; informer events, runtime events, probe results and a periodic resync queue it.
//
//   gone or deleting ──► stop (grace) · remove · network down · rm dir · confirm Delete(grace 0)
//   evicted          ──► kill the containers (no grace) · phase Failed, reason Evicted · as terminal
//                        (node pressure, or an emptyDir over its sizeLimit, measured every sync)
//   terminal phase   ──► release the network; nothing restarts
//   otherwise        ──► network up (once; made anew: the init containers run again, reinit.ts)
//                        · /etc files · volumes
//                        init containers in order, each to success ──► app containers
//                        each: running? keep (unless a probe asked to kill) · exited? restart per
//                        policy after CrashLoopBackOff · none? pull per policy, create, start
//                   ──► probes follow the running containers ──► status (written if changed)
//
// Here: the pass and the init sequence. Stopping, evicting and finishing: pod-stop.ts; one
// container's step: container-sync.ts; the containers listed and the status written: pod-report.ts.
import type { Result } from "../client/workqueue.ts";
import type { Container, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { EventRecorder } from "../client/events.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Logger } from "../log/log.ts";
import type { ContainerInfo, ContainerRuntime, RegistryAuth } from "../runtime/runtime.ts";
import { envReferences, type ConfigContext } from "./container-config.ts";
import { createContainerSync } from "./container-sync.ts";
import { createFaultReporter } from "./faults.ts";
import { createPodReporter } from "./pod-report.ts";
import { createPodStopper } from "./pod-stop.ts";
import type { SecurityOptions } from "./security.ts";
import type { PodNetwork } from "./network.ts";
import { writeEtcFiles, type PodDnsSettings } from "./pod-files.ts";
import { VolumeMountError, type VolumeManager } from "./volumes/index.ts";
import type { EnvPair } from "./service-env.ts";
import { instancesByName, isSidecar, isTerminal } from "./pod-status.ts";
import type { ProbeManager } from "./probes.ts";
import { newPodState, type BackoffPolicy, type PodState } from "./state.ts";
import type { TokenProjector } from "./serviceaccount-token.ts";
import type { StatusManager } from "./status.ts";
import { stopWithHooks } from "./hooks.ts";
import { clearInitFloors, countsForSandbox, initFloorsFor, loadInitFloors, saveInitFloors } from "./reinit.ts";

export interface PodWorkerDeps {
  nodeName: string;
  rootDir: string;
  runtime: ContainerRuntime;
  network: PodNetwork;
  pods: ResourceClient<Pod>;
  status: StatusManager;
  probes: ProbeManager;
  log: Logger;
  /** The pod with this uid as the informer has it (undefined once it is gone from the API). */
  lookup(uid: string): Pod | undefined;
  hostIP(): string;
  /** "containerd": container ids are reported as containerd://<id>. */
  runtimeName(): string;
  resolvConfPath: string;
  /** Cluster DNS for resolv.conf (absent: pods get the node's resolv.conf). */
  dns?(): PodDnsSettings | undefined;
  /** Service environment variables for new containers of a namespace (service-env.ts). */
  serviceEnv?(namespace: string, serviceLinks: boolean): EnvPair[];
  crashLoop: BackoffPolicy & { resetMs: number };
  imagePull: BackoffPolicy;
  /** Retries after create/start/config errors. */
  startRetry: BackoffPolicy;
  /** A ConfigMap's data or a Secret's data (decoded) in a namespace; undefined when absent. */
  configData?(kind: "ConfigMap" | "Secret", namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** The pods' volumes (volumes/index.ts). */
  volumes: VolumeManager;
  /** The node's allocatable resources (downward API resourceFieldRef of containers without limits). */
  nodeAllocatable?(): Record<string, string>;
  /** The ServiceAccount token, CA and namespace files of pods (serviceaccount-token.ts). */
  tokens?: TokenProjector;
  /** Events about the pods (lost containers, networks set up again). */
  recorder?: EventRecorder;
  /** Registry credentials for a pod's image (imagePullSecrets). */
  credentials?(pod: Pod, image: string): Promise<RegistryAuth[]>;
  insecureRegistries?: string[];
  /** seccomp defaults for containers (--seccomp-default, --seccomp-profile-root). */
  security?: SecurityOptions;
  /**
   * A new pod's first status (its IP, ContainerCreating) is written only if the pod is not
   * running this long after its sync began: a pod that starts sooner costs one status write, not
   * two. 0 writes it at once.
   */
  firstStatusDelayMs?: number;
}

export interface PodWorkers {
  syncPod(uid: string): Promise<Result>;
  /** Remembers the last version of a pod (call on informer delete, to know its grace period). */
  remember(pod: Pod): void;
  /** A probe asks to stop a container; the next sync does it and restarts it per policy. */
  requestKill(uid: string, containerId: string, message: string, graceSeconds: number): void;
  /** Pods the agent is working on (also those gone from the API but not yet torn down). */
  known(uid: string): boolean;
  uids(): string[];
  /** New images arrived (an import): containers waiting with ErrImageNeverPull try again at once. */
  imagesChanged(): void;
  /** The eviction manager chose the pod: the next sync stops it and fails it as Evicted. */
  evict(uid: string, message: string): void;
}

/** How long a container listed without its state keeps its last status (see startPod). */
export const UNREADABLE_GRACE_MS = 30_000;
const UNREADABLE_RETRY_MS = 500;
/** How soon a sidecar just started (without a startup probe) is looked at again, to go on with the init sequence. */
const SIDECAR_RECHECK_MS = 200;

export function createPodWorkers(deps: PodWorkerDeps): PodWorkers {
  const { log } = deps;
  const states = new Map<string, PodState>();
  const faults = createFaultReporter({ log, recorder: deps.recorder });
  const report = createPodReporter(deps);
  const { podContainers, writeStatus } = report;
  const { terminate, releaseNetwork, evictPod, stopSidecars } = createPodStopper(deps, report, states);
  const { ensureContainer, removeInstance } = createContainerSync(deps, faults);

  async function syncPod(uid: string): Promise<Result> {
    const apiPod = deps.lookup(uid);
    let state = states.get(uid);
    if (apiPod) {
      if (!state) states.set(uid, (state = newPodState(apiPod)));
      else state.pod = apiPod;
    }
    if (!state) return;
    if (!state.initFloorsLoaded) {
      // Floors exist only for init containers (initFloorsFor), which a pod cannot gain later: a
      // pod without any has no file to read.
      if ((state.pod.spec?.initContainers.length ?? 0) > 0) state.initFloors = await loadInitFloors(deps.rootDir, uid);
      state.initFloorsLoaded = true;
    }
    const pod = state.pod;
    if (!apiPod || pod.metadata!.deletionTimestamp) {
      await terminate(state, apiPod !== undefined);
      return;
    }
    if (!state.eviction && !isTerminal(pod)) {
      // emptyDir sizeLimit: measured at every sync, like the kubelet's local storage eviction.
      const over = await deps.volumes.sizeLimitExceeded(pod);
      if (over) {
        state.eviction = over;
        deps.recorder?.event(pod, "Warning", "Evicted", over);
        log.warn({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, message: over }, "emptyDir over its sizeLimit: evicting the pod");
      }
    }
    if (state.eviction && !isTerminal(pod)) return evictPod(state);
    if (isTerminal(pod)) {
      deps.probes.removePod(uid);
      // After an agent restart the network may still be up: tearDown is idempotent.
      if (!pod.spec!.hostNetwork && !state.networkReleased) {
        await deps.network.tearDown(uid);
        state.networkReleased = true;
      }
      state.network = undefined;
      await writeStatus(state, await podContainers(uid), "");
      return;
    }
    state.startTime ??= new Date();
    const spec = pod.spec!;

    if (!spec.hostNetwork && !state.network) {
      try {
        const net = await deps.network.setUp(pod);
        state.network = net;
        state.setupError = undefined;
        if (net.restored) {
          faults.networkRestored(pod, pod.status?.podIp ?? "", net.ip);
          await sandboxRestored(state, net.ip);
        }
      } catch (err) {
        state.setupError = `failed to set up the pod network: ${err instanceof Error ? err.message : String(err)}`;
        log.warn({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, podUid: pod.metadata!.uid, err: state.setupError }, "network setup failed");
        await writeStatus(state, await podContainers(uid), "");
        return { requeue: true };
      }
    }
    const podIP = spec.hostNetwork ? deps.hostIP() : state.network!.ip;
    const netnsPath = spec.hostNetwork ? "" : state.network!.netnsPath;

    const containers = await podContainers(uid);
    // The first pass shows the pod's IP and ContainerCreating before a possibly long pull — unless
    // the containers run before anyone could see that status (firstStatusDelayMs).
    let early: { timer?: NodeJS.Timeout; write?: Promise<unknown> } | undefined;
    if (containers.length === 0) {
      const delay = deps.firstStatusDelayMs ?? 0;
      if (delay <= 0) await writeStatus(state, containers, podIP);
      else {
        const e: typeof early = {};
        e.timer = setTimeout(() => {
          e.write = podContainers(uid)
            .then((cs) => writeStatus(state, cs, podIP))
            .catch((err) => log.warn({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, podUid: pod.metadata!.uid, err: String(err) }, "status write failed"));
        }, delay);
        early = e;
      }
    }
    // Never let the first status land after the final one.
    const settleEarly = async () => {
      clearTimeout(early?.timer);
      await early?.write;
    };
    try {
      return await startPod(state, uid, podIP, netnsPath, containers, settleEarly);
    } finally {
      await settleEarly();
    }
  }

  /**
   * The pod's network namespace was made anew (a reboot): what still runs of it runs in the old
   * one and stops; the init containers run again before the app containers (reinit.ts).
   */
  async function sandboxRestored(state: PodState, podIP: string): Promise<void> {
    const pod = state.pod;
    const grace = Number(pod.spec?.terminationGracePeriodSeconds ?? 30n);
    let containers = await podContainers(state.uid);
    const running = containers.filter((c) => c.state === "running");
    for (const c of running) await stopWithHooks(deps, pod, podIP, c, grace);
    if (running.length > 0) containers = await podContainers(state.uid);
    const floors = initFloorsFor(pod, containers);
    if (!floors) return;
    await saveInitFloors(deps.rootDir, state.uid, floors);
    state.initFloors = floors;
    log.info({ pod: `${pod.metadata!.namespace}/${pod.metadata!.name}`, podUid: state.uid, stopped: running.length }, "new pod sandbox: running the init containers again");
  }

  /** The pod's containers toward running, then its status; the rest of syncPod. */
  async function startPod(
    state: PodState,
    uid: string,
    podIP: string,
    netnsPath: string,
    containers: ContainerInfo[],
    beforeStatus: () => Promise<void>,
  ): Promise<Result> {
    const pod = state.pod;
    const spec = pod.spec!;

    let ctx: ConfigContext | Error;
    try {
      let volumes;
      try {
        volumes = await deps.volumes.prepare(pod);
      } catch (err) {
        // Tried again at the next sync: the container waits in ContainerCreating meanwhile.
        if (err instanceof VolumeMountError) deps.recorder?.event(pod, "Warning", "FailedMount", err.message);
        throw err;
      }
      // CreateToken and the /etc files at once: neither needs the other, and under load the call
      // alone can take most of firstStatusDelayMs.
      const [etcMounts, tokenMount] = await Promise.all([writeEtcFiles(deps.rootDir, pod, podIP, deps.resolvConfPath, deps.dns?.()), deps.tokens?.ensure(pod)]);
      if (tokenMount) etcMounts.push(tokenMount);
      const { configMaps, secrets } = await envSources(pod);
      const serviceEnv = deps.serviceEnv?.(pod.metadata!.namespace, spec.enableServiceLinks !== false) ?? [];
      ctx = { rootDir: deps.rootDir, nodeName: deps.nodeName, hostIP: deps.hostIP(), podIP, netnsPath, volumes, etcMounts, configMaps, secrets, serviceEnv, security: deps.security, nodeAllocatable: deps.nodeAllocatable?.(), subPathDir: deps.volumes.subPathDir(uid) };
    } catch (err) {
      ctx = err instanceof Error ? err : new Error(String(err));
    }

    let retryAt: number | undefined;
    const noteRetry = (at: number) => {
      retryAt = retryAt === undefined ? at : Math.min(retryAt, at);
    };
    const byName = instancesByName(containers);
    const names = new Set([...spec.initContainers, ...spec.containers].map((c) => c.name));
    for (const [name, list] of byName) {
      if (!names.has(name)) for (const c of list) await removeInstance(state, c);
    }

    const floors = state.initFloors;
    const ensure = (c: Container, isInit: boolean) =>
      ensureContainer(state, c, isInit, byName.get(c.name) ?? [], ctx, noteRetry, isInit ? floors?.[c.name] : undefined);
    // Sidecars (restartPolicy Always) are kept running all along; in the init sequence, one that
    // runs and passed its startup probe lets the next init container start. In a new sandbox
    // (floors), only init instances made since count, and the app containers wait for them.
    const ensured = new Set<string>();
    let initialized = !floors && spec.containers.some((c) => (byName.get(c.name) ?? []).length > 0);
    if (!initialized) {
      initialized = true;
      for (const c of spec.initContainers) {
        const cur = byName.get(c.name)?.[0];
        const current = countsForSandbox(floors, c, cur);
        if (isSidecar(c)) {
          await ensure(c, true);
          ensured.add(c.name);
          const started = current && cur.state === "running" && (!c.startupProbe || deps.probes.started(uid, c.name, cur.id));
          if (started) continue;
          // Look again soon: a sidecar without a startup probe counts as started once it runs.
          if (!c.startupProbe) noteRetry(Date.now() + SIDECAR_RECHECK_MS);
        } else {
          if (current && cur.state === "exited" && cur.exitCode === 0) continue;
          await ensure(c, true);
        }
        initialized = false;
        break;
      }
    }
    // The sequence went on past a sidecar only once it started; one further on that has not
    // started in this sandbox waits for its turn (not started early by the keep-running pass).
    for (const c of spec.initContainers) {
      if (!isSidecar(c) || ensured.has(c.name)) continue;
      if (initialized || countsForSandbox(floors, c, byName.get(c.name)?.[0])) await ensure(c, true);
    }
    if (initialized && floors) {
      await clearInitFloors(deps.rootDir, uid);
      state.initFloors = undefined;
    }
    if (initialized) for (const c of spec.containers) await ensure(c, false);

    await beforeStatus();
    containers = await podContainers(uid);
    // containerd leaves a task out of its list when the task's shim does not answer in time (a
    // loaded machine): a started container comes without a state though it most likely still
    // runs. Reporting it so would flip a serving pod to Pending and unready (and restart its
    // probes); keep the last status and the probes instead, and look again soon, unless it lasts.
    if (!containers.some((c) => c.state === "unknown" && c.startedAt !== undefined)) state.unreadableSince = undefined;
    else {
      state.unreadableSince ??= Date.now();
      if (Date.now() - state.unreadableSince < UNREADABLE_GRACE_MS) {
        const again = Date.now() + UNREADABLE_RETRY_MS;
        return { requeueAfterMs: Math.max(0, Math.min(again, retryAt ?? again) - Date.now()) };
      }
    }
    deps.probes.sync(pod, podIP, containers);
    const stored = await writeStatus(state, containers, podIP);
    if (stored && isTerminal(stored)) {
      deps.probes.removePod(uid);
      await stopSidecars(state, containers, podIP);
      await releaseNetwork(state);
      state.networkReleased = true;
      return;
    }
    return retryAt === undefined ? undefined : { requeueAfterMs: Math.max(0, retryAt - Date.now()) };
  }

  /** Reads the ConfigMaps and Secrets the pod's containers take environment from. */
  async function envSources(pod: Pod): Promise<Pick<ConfigContext, "configMaps" | "secrets">> {
    const configMaps = new Map<string, Record<string, string>>();
    const secrets = new Map<string, Record<string, string>>();
    const ns = pod.metadata!.namespace;
    for (const c of [...pod.spec!.initContainers, ...pod.spec!.containers]) {
      const refs = envReferences(c);
      for (const [kind, names, into] of [["ConfigMap", refs.configMaps, configMaps], ["Secret", refs.secrets, secrets]] as const) {
        for (const name of names) {
          if (into.has(name)) continue;
          const data = await deps.configData?.(kind, ns, name);
          if (data) into.set(name, data);
        }
      }
    }
    return { configMaps, secrets };
  }

  return {
    syncPod,
    remember(pod) {
      const state = states.get(pod.metadata!.uid);
      if (state) state.pod = pod;
    },
    requestKill(uid, containerId, message, graceSeconds) {
      states.get(uid)?.killRequests.set(containerId, { message, graceSeconds });
    },
    known: (uid) => states.has(uid),
    uids: () => [...states.keys()],
    evict(uid, message) {
      const state = states.get(uid);
      if (state) state.eviction = message;
    },
    imagesChanged() {
      for (const state of states.values()) {
        for (const rec of state.containers.values()) if (rec.waiting?.reason === "ErrImageNeverPull") rec.retry = undefined;
      }
    },
  };
}
