// Image garbage collection (kubelet's image GC policy): when the image filesystem is used above
// the high threshold (percent), unused images are removed, least recently used first, until the
// usage would be at the low threshold. An image any container of the runtime uses (running or
// exited: it may restart) is never removed.
//
// "Last used" is remembered in memory from the passes: an image in use gets `now`; an image seen
// for the first time unused gets the time it was first seen. After an agent restart every unused
// image starts from "first seen now", ordered by size among equals (largest first).
import type { ContainerRuntime, ImageInfo } from "../../runtime/runtime.ts";
import type { Observation } from "./thresholds.ts";

export interface ImageGcPolicy {
  /** Percent of the image filesystem in use that starts a collection. Default 85. */
  highPercent: number;
  /** Percent a collection frees down to. Default 80. */
  lowPercent: number;
}

export const DEFAULT_IMAGE_GC: ImageGcPolicy = { highPercent: 85, lowPercent: 80 };

/** Checks --image-gc-high-threshold / --image-gc-low-threshold. */
export function checkImageGcPolicy(p: ImageGcPolicy): ImageGcPolicy {
  for (const [flag, v] of [["--image-gc-high-threshold", p.highPercent], ["--image-gc-low-threshold", p.lowPercent]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 100) throw new Error(`${flag} must be a whole percent from 0 to 100, got ${v}`);
  }
  if (p.lowPercent > p.highPercent) {
    throw new Error(`--image-gc-low-threshold (${p.lowPercent}) must not be above --image-gc-high-threshold (${p.highPercent})`);
  }
  return p;
}

/** Bytes to free: 0 below the high threshold, else down to the low one. */
export function bytesToFree(fs: Observation, policy: ImageGcPolicy): bigint {
  if (fs.capacity <= 0n) return 0n;
  const used = fs.capacity - fs.available;
  if (used * 100n < BigInt(policy.highPercent) * fs.capacity) return 0n;
  const target = (fs.capacity * BigInt(policy.lowPercent)) / 100n;
  return used > target ? used - target : 0n;
}

/** The unused images to remove, in order, until their sizes add up to `need` bytes. */
export function imagesToRemove(images: readonly ImageInfo[], inUse: ReadonlySet<string>, lastUsed: ReadonlyMap<string, number>, need: bigint): ImageInfo[] {
  const unused = images
    .filter((i) => !inUse.has(i.id))
    .sort((a, b) => (lastUsed.get(a.id) ?? 0) - (lastUsed.get(b.id) ?? 0) || b.sizeBytes - a.sizeBytes);
  const out: ImageInfo[] = [];
  let freed = 0n;
  for (const i of unused) {
    if (freed >= need) break;
    out.push(i);
    freed += BigInt(i.sizeBytes);
  }
  return out;
}

export interface ImageGc {
  /** Notes which images are used now (call every pass, also below the threshold). */
  track(): Promise<{ images: ImageInfo[]; inUse: Set<string> }>;
  /** Frees up to `need` bytes of unused images; returns what it removed. */
  collect(need: bigint): Promise<ImageInfo[]>;
}

export function createImageGc(opts: { runtime: ContainerRuntime; now?: () => number; onRemoved?: (i: ImageInfo) => void }): ImageGc {
  const { runtime } = opts;
  const now = opts.now ?? Date.now;
  const lastUsed = new Map<string, number>();

  async function track() {
    const [images, containers] = await Promise.all([runtime.listImages(), runtime.listContainers()]);
    const byName = new Map<string, string>();
    for (const i of images) for (const n of i.names) byName.set(n, i.id);
    const inUse = new Set<string>();
    for (const c of containers) {
      const id = c.imageId || byName.get(c.image);
      if (id) inUse.add(id);
    }
    const t = now();
    const present = new Set(images.map((i) => i.id));
    for (const id of lastUsed.keys()) if (!present.has(id)) lastUsed.delete(id);
    for (const i of images) {
      if (inUse.has(i.id)) lastUsed.set(i.id, t);
      else if (!lastUsed.has(i.id)) lastUsed.set(i.id, t);
    }
    return { images, inUse };
  }

  return {
    track,
    async collect(need) {
      // Read again right before removing: a container created since must keep its image.
      const { images, inUse } = await track();
      const removed: ImageInfo[] = [];
      for (const i of imagesToRemove(images, inUse, lastUsed, need)) {
        await runtime.removeImage(i.id);
        lastUsed.delete(i.id);
        removed.push(i);
        opts.onRemoved?.(i);
      }
      return removed;
    },
  };
}
