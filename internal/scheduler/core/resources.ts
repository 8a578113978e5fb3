// Resource amounts as plain numbers, so that filtering 500 nodes costs additions, not bigint
// parsing: cpu in millicores, every other resource in whole units (bytes, pods, devices), as
// kube-scheduler counts them. A number holds integers exactly up to 2^53 (8 PiB of memory).
import type { PodSpec } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { parseQuantity } from "../../api/quantity.ts";

/** Resource name → amount (cpu: millicores; others: whole units). */
export type ResourceList = Record<string, number>;

/** What a pod without requests counts as, for scoring only (kube's non-zero defaults). */
export const DEFAULT_NONZERO_CPU_MILLI = 100;
export const DEFAULT_NONZERO_MEMORY = 200 * 1024 * 1024;

/**
 * Amounts of the quantity strings seen lately, cpu and the others apart: the pods of a workload
 * repeat the same few strings, and each parse makes bigints (4 parses per pod for cpu and memory).
 * Bounded: cleared when full.
 */
const MAX_REMEMBERED = 1024;
const cpuAmounts = new Map<string, number>();
const unitAmounts = new Map<string, number>();

/** One quantity string as an amount; an unparsable one counts as 0 (validation rejects them). */
export function toAmount(name: string, quantity: string): number {
  const seen = name === "cpu" ? cpuAmounts : unitAmounts;
  let amount = seen.get(quantity);
  if (amount === undefined) {
    if (seen.size >= MAX_REMEMBERED) seen.clear();
    seen.set(quantity, (amount = parseAmount(name, quantity)));
  }
  return amount;
}

function parseAmount(name: string, quantity: string): number {
  let milli: bigint;
  try {
    milli = parseQuantity(quantity).milliValue;
  } catch {
    return 0;
  }
  if (name === "cpu") return Number(milli);
  // Whole units, rounded up like Kubernetes' Value().
  const whole = milli / 1000n + (milli % 1000n > 0n ? 1n : 0n);
  return Number(whole);
}

export function parseResourceList(map: Record<string, string> | undefined): ResourceList {
  const out: ResourceList = {};
  if (!map) return out;
  for (const [name, q] of Object.entries(map)) out[name] = toAmount(name, q);
  return out;
}

/**
 * A pod's effective requests: per resource, the sum over its containers or the largest single
 * init container, whichever is more (init containers run one at a time, before the others).
 */
export function podRequests(spec: PodSpec | undefined): ResourceList {
  const sum: ResourceList = {};
  for (const c of spec?.containers ?? []) {
    for (const [name, q] of Object.entries(c.resources?.requests ?? {})) sum[name] = (sum[name] ?? 0) + toAmount(name, q);
  }
  for (const c of spec?.initContainers ?? []) {
    for (const [name, q] of Object.entries(c.resources?.requests ?? {})) {
      const v = toAmount(name, q);
      if (v > (sum[name] ?? 0)) sum[name] = v;
    }
  }
  // A pod asking for "pods" makes no sense; the pod count is handled on its own.
  delete sum.pods;
  for (const name of Object.keys(sum)) if (sum[name] === 0) delete sum[name];
  return sum;
}

/**
 * cpu and memory for scoring: containers without a request count the defaults above, so that
 * best-effort pods still spread instead of piling onto the node that looks emptiest.
 */
export function nonZeroRequests(spec: PodSpec | undefined): { cpu: number; memory: number } {
  const one = (requests: Record<string, string> | undefined) => ({
    cpu: requests?.cpu !== undefined ? toAmount("cpu", requests.cpu) : DEFAULT_NONZERO_CPU_MILLI,
    memory: requests?.memory !== undefined ? toAmount("memory", requests.memory) : DEFAULT_NONZERO_MEMORY,
  });
  let cpu = 0;
  let memory = 0;
  for (const c of spec?.containers ?? []) {
    const r = one(c.resources?.requests);
    cpu += r.cpu;
    memory += r.memory;
  }
  for (const c of spec?.initContainers ?? []) {
    const r = one(c.resources?.requests);
    cpu = Math.max(cpu, r.cpu);
    memory = Math.max(memory, r.memory);
  }
  return { cpu, memory };
}
