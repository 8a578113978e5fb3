// The kill-and-time loop of the failover benchmarks (ha, etcd-leader): after a kill, retry a call
// while the cluster answers "not now" and note when it is served again and how many calls failed.
import { Code, ConnectError } from "@connectrpc/connect";
import { performance } from "node:perf_hooks";
import { sleep } from "./stats.ts";

/** The codes of a cluster that is moving to another server or member; anything else is a real error. */
export const NOT_NOW: readonly Code[] = [Code.Unavailable, Code.Aborted, Code.DeadlineExceeded];

export interface Served<T> {
  value: T;
  /** performance.now() when `op` first succeeded. */
  servedAt: number;
  /** Calls that failed with a retried code before that. */
  failed: number;
}

/** Runs `op` until it succeeds, every `intervalMs` while it fails with one of `retryOn`; any other error is thrown. */
export async function untilServed<T>(op: () => Promise<T>, opts: { retryOn?: readonly Code[]; intervalMs?: number } = {}): Promise<Served<T>> {
  const retryOn = opts.retryOn ?? NOT_NOW;
  let failed = 0;
  for (;;) {
    try {
      const value = await op();
      return { value, servedAt: performance.now(), failed };
    } catch (err) {
      if (!retryOn.includes(ConnectError.from(err).code)) throw err;
      failed++;
      await sleep(opts.intervalMs ?? 10);
    }
  }
}
