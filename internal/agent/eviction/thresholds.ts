// Hard eviction thresholds (`--eviction-hard`, kubelet's syntax and defaults) and their test
// against what the node observed. Pure.
//
//   "memory.available<100Mi,nodefs.available<10%"  ──parse──►  Threshold[]
//   Observations (bytes / inodes, with capacities)  ──crossed──►  the thresholds crossed now
import { parseQuantity, quantityToBytes } from "../../api/quantity.ts";

export type Signal = "memory.available" | "nodefs.available" | "nodefs.inodesFree" | "imagefs.available" | "imagefs.inodesFree";
const SIGNALS: readonly Signal[] = ["memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree"];

/** The node condition a signal feeds, and the resource its evictions name. */
export const SIGNAL_CONDITION: Record<Signal, "MemoryPressure" | "DiskPressure"> = {
  "memory.available": "MemoryPressure",
  "nodefs.available": "DiskPressure",
  "nodefs.inodesFree": "DiskPressure",
  "imagefs.available": "DiskPressure",
  "imagefs.inodesFree": "DiskPressure",
};
export const SIGNAL_RESOURCE: Record<Signal, string> = {
  "memory.available": "memory",
  "nodefs.available": "ephemeral-storage",
  "nodefs.inodesFree": "inodes",
  "imagefs.available": "ephemeral-storage",
  "imagefs.inodesFree": "inodes",
};

export interface Threshold {
  signal: Signal;
  /** An absolute amount (bytes, or inodes) … */
  quantity?: bigint;
  /** … or a share of the capacity, 0–100. */
  percentage?: number;
  /** As written, for messages ("100Mi", "10%"). */
  text: string;
}

/** kubelet's defaults on Linux. */
export const DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%";

/**
 * Parses `--eviction-hard`. Signals not named keep their default; `signal<0` (or `<0%`) turns
 * one off. Errors name the flag, the entry and what is allowed.
 */
export function parseEvictionHard(flag: string): Threshold[] {
  const bySignal = new Map<Signal, Threshold>();
  const add = (text: string, source: string) => {
    for (const raw of text.split(",")) {
      const entry = raw.trim();
      if (entry === "") continue;
      const m = /^([A-Za-z.]+)<(.+)$/.exec(entry);
      const signal = m?.[1] as Signal | undefined;
      if (!m || !SIGNALS.includes(signal!)) {
        throw new Error(`${source}: "${entry}" is not SIGNAL<QUANTITY or SIGNAL<PERCENT% with SIGNAL one of ${SIGNALS.join(", ")}`);
      }
      bySignal.set(signal!, parseValue(signal!, m[2], source));
    }
  };
  add(DEFAULT_EVICTION_HARD, "default");
  add(flag, "--eviction-hard");
  return [...bySignal.values()].filter((t) => (t.percentage ?? 1) > 0 && (t.quantity ?? 1n) > 0n);
}

function parseValue(signal: Signal, value: string, source: string): Threshold {
  if (value.endsWith("%")) {
    const percentage = Number(value.slice(0, -1));
    if (!/^\d+(\.\d+)?%$/.test(value) || percentage > 100) throw new Error(`${source}: ${signal}<${value}: a percentage must be from 0% to 100%`);
    return { signal, percentage, text: value };
  }
  try {
    const q = signal.endsWith("inodesFree") ? BigInt(value) : quantityToBytes(parseQuantity(value));
    if (q < 0n) throw new Error("negative");
    return { signal, quantity: q, text: value };
  } catch {
    throw new Error(`${source}: ${signal}<${value}: want a quantity such as 100Mi or 1Gi (a count for inodes), or a percentage such as 10%`);
  }
}

/** One signal's figure: what is available and out of how much (bytes or inodes). */
export interface Observation {
  available: bigint;
  capacity: bigint;
}
export type Observations = Partial<Record<Signal, Observation>>;

export interface Crossed {
  threshold: Threshold;
  observed: Observation;
  /** The threshold in the signal's unit. */
  limit: bigint;
}

/** The threshold as an amount of the observed capacity. */
export function thresholdAmount(t: Threshold, capacity: bigint): bigint {
  if (t.quantity !== undefined) return t.quantity;
  return (capacity * BigInt(Math.round(t.percentage! * 1000))) / 100_000n;
}

/** The thresholds crossed (available below the limit); a signal the node could not observe never is. */
export function crossedThresholds(thresholds: readonly Threshold[], obs: Observations): Crossed[] {
  const out: Crossed[] = [];
  for (const t of thresholds) {
    const o = obs[t.signal];
    if (!o || o.capacity <= 0n) continue;
    const limit = thresholdAmount(t, o.capacity);
    if (o.available < limit) out.push({ threshold: t, observed: o, limit });
  }
  return out;
}

/** kubelet's eviction message: which resource, the threshold and what was left. */
export function evictionMessage(c: Crossed): string {
  const resource = SIGNAL_RESOURCE[c.threshold.signal];
  const unit = resource === "inodes" ? "" : "Ki";
  const avail = resource === "inodes" ? c.observed.available.toString() : `${c.observed.available / 1024n}${unit}`;
  return `The node was low on resource: ${resource}. Threshold quantity: ${c.threshold.text}, available: ${avail}.`;
}
