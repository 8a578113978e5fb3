// Rate limiters for WorkQueue retries. A limiter answers "how long should this key wait before
// its next attempt?"; the queue turns the answer into an addAfter. Semantics follow client-go's
// workqueue rate limiters: per-key exponential backoff, an overall token bucket, and the max of both.

export interface RateLimiter<K extends string = string> {
  /** Delay in ms before `key` may be retried; counts as one more failure for the key. */
  when(key: K): number;
  /** Drop what the limiter remembers about `key` (call after a success). */
  forget(key: K): void;
  /** How many times `key` has been retried since it was last forgotten. */
  numRequeues(key: K): number;
}

export interface ExponentialBackoffOptions {
  /** Delay after the first failure. Default 5 ms. */
  baseDelayMs?: number;
  /** Upper bound of the delay. Default 1000 s. */
  maxDelayMs?: number;
}

export const DEFAULT_BASE_DELAY_MS = 5;
export const DEFAULT_MAX_DELAY_MS = 1_000_000;
export const DEFAULT_QPS = 10;
export const DEFAULT_BURST = 100;

/** base * 2^failures, capped at max: a key that keeps failing backs off without hammering the API. */
export function createExponentialBackoffLimiter<K extends string = string>(
  opts: ExponentialBackoffOptions = {},
): RateLimiter<K> {
  const base = opts.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
  const max = opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  if (!(base >= 0) || !(max >= base)) {
    throw new RangeError(`backoff needs 0 <= baseDelayMs <= maxDelayMs (got ${base}, ${max})`);
  }
  const failures = new Map<K, number>();
  return {
    when(key) {
      const n = failures.get(key) ?? 0;
      failures.set(key, n + 1);
      // 2^n overflows to Infinity long before n itself becomes a problem; the cap handles it.
      const delay = base * 2 ** n;
      return delay > max ? max : delay;
    },
    forget(key) {
      failures.delete(key);
    },
    numRequeues(key) {
      return failures.get(key) ?? 0;
    },
  };
}

export interface TokenBucketOptions {
  /** Sustained retries per second across all keys. Default 10; Infinity disables the bucket. */
  qps?: number;
  /** Retries allowed at once before qps applies. Default 100. */
  burst?: number;
  /** Monotonic clock in ms; injectable for tests. */
  now?: () => number;
}

/**
 * Overall limit on retries, whatever the key: protects the API server when many keys fail at
 * once. Each call reserves the next token, so the returned delays space retries at 1/qps.
 */
export function createTokenBucketLimiter<K extends string = string>(
  opts: TokenBucketOptions = {},
): RateLimiter<K> {
  const qps = opts.qps ?? DEFAULT_QPS;
  const burst = opts.burst ?? DEFAULT_BURST;
  const now = opts.now ?? (() => performance.now());
  if (!(qps > 0)) throw new RangeError(`qps must be > 0 (got ${qps})`);
  if (!(burst >= 1)) throw new RangeError(`burst must be >= 1 (got ${burst})`);
  let tokens = burst;
  let last = now();
  return {
    when() {
      if (qps === Infinity) return 0;
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) * qps) / 1000);
      last = t;
      // Going negative reserves a future token: the debt is how long this caller waits.
      tokens -= 1;
      return tokens >= 0 ? 0 : (-tokens * 1000) / qps;
    },
    forget() {},
    numRequeues() {
      return 0;
    },
  };
}

/** The longest delay any of `limiters` asks for; every limiter sees every call. */
export function createMaxOfLimiter<K extends string = string>(
  ...limiters: RateLimiter<K>[]
): RateLimiter<K> {
  return {
    when(key) {
      let delay = 0;
      for (const l of limiters) delay = Math.max(delay, l.when(key));
      return delay;
    },
    forget(key) {
      for (const l of limiters) l.forget(key);
    },
    numRequeues(key) {
      let n = 0;
      for (const l of limiters) n = Math.max(n, l.numRequeues(key));
      return n;
    },
  };
}

/** client-go's controller default: per-key backoff combined with an overall bucket. */
export function createDefaultControllerRateLimiter<K extends string = string>(
  opts: ExponentialBackoffOptions & TokenBucketOptions = {},
): RateLimiter<K> {
  return createMaxOfLimiter<K>(
    createExponentialBackoffLimiter<K>(opts),
    createTokenBucketLimiter<K>(opts),
  );
}
