// Latency samples → percentiles, and a closed-loop load generator that collects them.
import { performance } from "node:perf_hooks";

export interface Summary {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

/** Nearest-rank percentile of ascending-sorted samples (q in 0..1). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    mean: sorted.length ? sum / sorted.length : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

export interface LoadResult {
  /** Latency of every operation, in ms. */
  latencies: Float64Array;
  /** Wall time of the whole phase, in ms. */
  wallMs: number;
  concurrency: number;
}

/**
 * Runs op(0) … op(n-1) with `concurrency` operations in flight at all times (closed loop: a worker
 * starts its next operation as soon as its previous one ends). The first error fails the phase.
 */
export async function runLoad(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const latencies = new Float64Array(n);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < n) {
      const i = next++;
      const t0 = performance.now();
      try {
        await op(i);
      } catch (err) {
        failed = true;
        throw err;
      }
      latencies[i] = performance.now() - t0;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { latencies, wallMs: performance.now() - start, concurrency };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
