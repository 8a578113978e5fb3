// Bounded concurrency for fire-and-forget async work (binds): run() waits only for a free slot,
// not for the task, so the scheduling loop keeps deciding while up to `size` binds are in flight.
export interface Pool {
  /** Starts `task` once fewer than `size` tasks run; resolves when it has started. */
  run(task: () => Promise<void>): Promise<void>;
  /** Resolves when no task is running or waiting. */
  idle(): Promise<void>;
  readonly running: number;
}

export function createPool(size: number): Pool {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size must be an integer >= 1 (got ${size})`);
  let running = 0;
  const waiting: { task: () => Promise<void>; started: () => void }[] = [];
  let idleWaiters: (() => void)[] = [];

  // A finished task hands its slot straight to the next waiting one, so `running` never
  // exceeds `size` even when run() is called in between.
  const finished = () => {
    const next = waiting.shift();
    if (next) {
      execute(next.task);
      next.started();
      return;
    }
    running--;
    if (running === 0) {
      const ws = idleWaiters;
      idleWaiters = [];
      for (const w of ws) w();
    }
  };

  const execute = (task: () => Promise<void>) => {
    void (async () => {
      try {
        await task();
      } catch {
        /* tasks handle their own errors */
      } finally {
        finished();
      }
    })();
  };

  return {
    run(task) {
      if (running < size) {
        running++;
        execute(task);
        return Promise.resolve();
      }
      return new Promise<void>((started) => waiting.push({ task, started }));
    },
    idle() {
      if (running === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    get running() {
      return running;
    },
  };
}
