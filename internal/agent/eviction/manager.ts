// The agent's eviction manager: every interval it observes the node (observe.ts), frees image
// space above the image GC threshold (image-gc.ts), decides the pressure conditions from the hard
// thresholds (thresholds.ts) and, while one is crossed, evicts one pod — the first by
// Kubernetes' ranking (rank.ts) — then looks again on the next pass, as the kubelet does.
//
//   observe ─► image GC (imagefs above high) ─► observe again if it removed any
//           ─► crossed thresholds ─► conditions (True at once; False only after the transition
//              period without a crossing, so a node near a threshold does not flap)
//           ─► crossed? rank the active pods by use of that resource ─► evict the first
import { join } from "node:path";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { Logger } from "../../log/log.ts";
import type { ContainerInfo, ContainerRuntime, ImageInfo } from "../../runtime/runtime.ts";
import { createImageGc, bytesToFree, DEFAULT_IMAGE_GC, type ImageGcPolicy } from "./image-gc.ts";
import { diskUsage, observeNode, processWorkingSet } from "./observe.ts";
import { rankForEviction, type PodUsage } from "./rank.ts";
import { crossedThresholds, evictionMessage, SIGNAL_CONDITION, SIGNAL_RESOURCE, type Crossed, type Observations, type Threshold } from "./thresholds.ts";

/** Pods at or above this priority (system-node-critical, system-cluster-critical) are never evicted. */
export const CRITICAL_PRIORITY = 2_000_000_000;

/** Under pressure: the condition's message (absent: no pressure). */
export interface NodePressure {
  MemoryPressure?: string;
  DiskPressure?: string;
}

export interface EvictionManagerOptions {
  runtime: ContainerRuntime;
  rootDir: string;
  /** containerd's root dir (the image filesystem); absent: imagefs signals and image GC are off. */
  imageFsDir?: string;
  thresholds: readonly Threshold[];
  imageGc?: ImageGcPolicy;
  /** Pods bound to this node that may run (not terminal, not being deleted). */
  activePods: () => Pod[];
  /** Stops the pod and fails it with reason Evicted and this message. */
  evict: (pod: Pod, message: string) => void;
  log: Logger;
  /** How often the node is looked at. Default 10 s. */
  intervalMs?: number;
  /** A condition stays True this long after the last crossing. Default 5 min (kubelet's). */
  transitionMs?: number;
  /** The next eviction waits at most this long for the last evicted pod to end. Default 30 s. */
  cleanupTimeoutMs?: number;
  /** Figures instead of the real ones (unit tests). */
  observe?: () => Promise<Observations>;
  usage?: (pod: Pod, containers: ContainerInfo[], resource: "memory" | "ephemeral-storage") => Promise<bigint>;
  /** After every pass (tests, benchmarks). */
  onPass?: (p: { crossed: Crossed[]; evicted?: Pod; imagesRemoved: ImageInfo[] }) => void;
  onImageRemoved?: (i: ImageInfo) => void;
}

export interface EvictionManager {
  start(signal: AbortSignal): void;
  /** One pass now (tests). */
  pass(): Promise<void>;
  /** The pressure conditions as of the last pass. */
  pressure(): NodePressure;
}

export function createEvictionManager(opts: EvictionManagerOptions): EvictionManager {
  const { runtime, log } = opts;
  const intervalMs = opts.intervalMs ?? 10_000;
  const transitionMs = opts.transitionMs ?? 5 * 60_000;
  const cleanupTimeoutMs = opts.cleanupTimeoutMs ?? 30_000;
  const gcPolicy = opts.imageGc ?? DEFAULT_IMAGE_GC;
  const imageGc = createImageGc({ runtime, onRemoved: opts.onImageRemoved });
  const observe = opts.observe ?? (() => observeNode({ rootDir: opts.rootDir, imageFsDir: opts.imageFsDir }));
  const lastCrossed: Partial<Record<keyof NodePressure, { at: number; signal: string; message: string }>> = {};
  /** Pods already told to go: a pod is evicted once. */
  const evicted = new Set<string>();
  /** The last pod evicted: the next eviction waits until it has ended (its resources freed). */
  let awaiting: { uid: string; at: number } | undefined;

  async function usageOf(pod: Pod, containers: ContainerInfo[], resource: "memory" | "ephemeral-storage"): Promise<bigint> {
    if (opts.usage) return opts.usage(pod, containers, resource);
    let sum = 0n;
    if (resource === "memory") {
      for (const c of containers) if (c.state === "running" && c.pid) sum += processWorkingSet(c.pid);
      return sum;
    }
    sum += await diskUsage(join(opts.rootDir, "pods", pod.metadata!.uid));
    for (const c of containers) if (c.logPath) sum += await diskUsage(c.logPath);
    return sum;
  }

  let warnedImageFs = false;

  async function pass(): Promise<void> {
    let obs = await observe();
    let imagesRemoved: ImageInfo[] = [];
    const imagefs = obs["imagefs.available"];
    if (opts.imageFsDir && !imagefs && !warnedImageFs) {
      warnedImageFs = true;
      log.warn({ imageFsDir: opts.imageFsDir }, "cannot read the image filesystem (pass --image-fs-dir: containerd's root): imagefs thresholds and image GC are off");
    }
    if (imagefs) {
      await imageGc.track();
      const need = bytesToFree(imagefs, gcPolicy);
      if (need > 0n) {
        imagesRemoved = await imageGc.collect(need);
        const freed = imagesRemoved.reduce((n, i) => n + i.sizeBytes, 0);
        const facts = { needBytes: Number(need), removed: imagesRemoved.map((i) => i.names[0] ?? i.id), freedBytes: freed };
        if (freed < Number(need)) log.warn(facts, "image filesystem above the image GC high threshold: not enough unused images to free");
        else log.info(facts, "image garbage collection");
        if (imagesRemoved.length > 0) obs = await observe();
      }
    }
    const crossed = crossedThresholds(opts.thresholds, obs);
    const now = Date.now();
    for (const c of crossed) {
      const cond = SIGNAL_CONDITION[c.threshold.signal];
      if (!lastCrossed[cond]) log.warn({ signal: c.threshold.signal, threshold: c.threshold.text, available: Number(c.observed.available) }, `eviction threshold crossed: ${cond}`);
      // A steady message: the figure itself would rewrite the Node status at every heartbeat.
      if (lastCrossed[cond]?.signal !== c.threshold.signal || !lastCrossed[cond]) {
        lastCrossed[cond] = { at: now, signal: c.threshold.signal, message: `the node crossed the eviction threshold ${c.threshold.signal}<${c.threshold.text}` };
      } else lastCrossed[cond].at = now;
    }
    for (const cond of Object.keys(lastCrossed) as (keyof NodePressure)[]) {
      if (now - lastCrossed[cond]!.at > transitionMs) {
        delete lastCrossed[cond];
        log.info({ condition: cond }, "node pressure over");
      }
    }
    let victim: Pod | undefined;
    if (crossed.length > 0) {
      // Memory first: it is the one that ends with the kernel's OOM killer choosing instead.
      const first = crossed.find((c) => c.threshold.signal === "memory.available") ?? crossed[0];
      victim = await evictOne(first);
    }
    opts.onPass?.({ crossed, evicted: victim, imagesRemoved });
  }

  async function evictOne(c: Crossed): Promise<Pod | undefined> {
    const resource = SIGNAL_RESOURCE[c.threshold.signal] === "memory" ? "memory" : "ephemeral-storage";
    const active = opts.activePods();
    // Like the kubelet's wait for pod cleanup: the figures still count the last pod until it ended.
    if (awaiting && active.some((p) => p.metadata!.uid === awaiting!.uid) && Date.now() - awaiting.at < cleanupTimeoutMs) return undefined;
    awaiting = undefined;
    const pods = active.filter((p) => !evicted.has(p.metadata!.uid) && (p.spec?.priority ?? 0) < CRITICAL_PRIORITY);
    if (pods.length === 0) return undefined;
    const containers = await runtime.listContainers();
    const usages: PodUsage[] = [];
    for (const pod of pods) {
      const mine = containers.filter((x) => x.podUid === pod.metadata!.uid);
      usages.push({ pod, usage: await usageOf(pod, mine, resource) });
    }
    const victim = rankForEviction(usages, resource)[0].pod;
    evicted.add(victim.metadata!.uid);
    awaiting = { uid: victim.metadata!.uid, at: Date.now() };
    if (evicted.size > 10_000) evicted.delete(evicted.values().next().value!);
    const message = evictionMessage(c);
    log.warn({ pod: `${victim.metadata!.namespace}/${victim.metadata!.name}`, signal: c.threshold.signal, message }, "evicting pod");
    opts.evict(victim, message);
    return victim;
  }

  let running = false;
  return {
    start(signal) {
      const tick = () => {
        if (running || signal.aborted) return;
        running = true;
        pass()
          .catch((err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, "eviction pass failed"))
          .finally(() => (running = false));
      };
      tick();
      const timer = setInterval(tick, intervalMs);
      signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    },
    pass,
    pressure: () => ({ MemoryPressure: lastCrossed.MemoryPressure?.message, DiskPressure: lastCrossed.DiskPressure?.message }),
  };
}
