// Prometheus metrics of the apiserver: requests by method and code, their latency, open watches
// per kind, and the latency of every storage call.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { addBuildInfo } from "../metrics/registry.ts";
import type { Store } from "../storage/store.ts";
import type { WatchBudget } from "./watch-budget.ts";

export interface ApiMetrics {
  registry: Registry;
  interceptor: Interceptor;
  /** Records one finished call (code undefined = ok), for calls served outside connect. */
  observe(service: string, method: string, code: Code | undefined, seconds: number): void;
  watchers: Gauge;
  instrument(store: Store): Store;
  /** Exposes a watch buffer budget: bytes held, its limits, watchers cut. */
  watchBudget(budget: WatchBudget): void;
}

export function createApiMetrics(): ApiMetrics {
  const registry = new Registry();
  // Its own prefix (bench/lib/probe.ts reads it): `skiff up` runs the apiserver beside the others.
  collectDefaultMetrics({ register: registry, prefix: "skiff_apiserver_process_" });
  addBuildInfo(registry, "apiserver");
  const requests = new Counter({
    name: "skiff_apiserver_requests_total",
    help: "API requests by service, method and result code.",
    labelNames: ["service", "method", "code"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "skiff_apiserver_request_duration_seconds",
    help: "API request latency (for watches: time to the first response).",
    labelNames: ["service", "method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const watchers = new Gauge({
    name: "skiff_apiserver_watchers",
    help: "Open watch streams by kind.",
    labelNames: ["kind"],
    registers: [registry],
  });
  const storage = new Histogram({
    name: "skiff_storage_request_duration_seconds",
    help: "Storage call latency by operation.",
    labelNames: ["operation"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });

  const codeLabel = (code: Code | undefined) =>
    code === undefined ? "ok" : Code[code].replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
  // prom-client hashes a label object on every call: keep the children per label set instead.
  const counters = new Map<string, ReturnType<Counter["labels"]>>();
  const timers = new Map<string, ReturnType<Histogram["labels"]>>();
  function observe(service: string, method: string, code: Code | undefined, seconds: number): void {
    const key = `${service}/${method}`;
    const ckey = `${key}/${code ?? ""}`;
    let c = counters.get(ckey);
    if (!c) counters.set(ckey, (c = requests.labels({ service, method, code: codeLabel(code) })));
    c.inc();
    let h = timers.get(key);
    if (!h) timers.set(key, (h = latency.labels({ service, method })));
    h.observe(seconds);
  }

  const interceptor: Interceptor = (next) => async (req) => {
    const start = performance.now();
    let code: Code | undefined;
    try {
      return await next(req);
    } catch (err) {
      code = ConnectError.from(err).code;
      throw err;
    } finally {
      observe(req.service.typeName, req.method.name, code, (performance.now() - start) / 1000);
    }
  };

  function instrument(store: Store): Store {
    const timed = <A extends unknown[], R>(op: string, fn: (...a: A) => Promise<R>) => {
      // One child per operation, timed with performance.now(): startTimer would hash its labels
      // and read hrtime on every storage call.
      const child = storage.labels({ operation: op });
      return async (...a: A): Promise<R> => {
        const start = performance.now();
        try {
          return await fn(...a);
        } finally {
          child.observe((performance.now() - start) / 1000);
        }
      };
    };
    return {
      ...store,
      get: timed("get", store.get.bind(store)),
      list: timed("list", store.list.bind(store)),
      count: timed("count", store.count.bind(store)),
      create: timed("create", store.create.bind(store)),
      update: timed("update", store.update.bind(store)),
      delete: timed("delete", store.delete.bind(store)),
      watch: store.watch.bind(store),
      currentRevision: store.currentRevision.bind(store),
      compact: store.compact.bind(store),
      ready: store.ready.bind(store),
      close: store.close.bind(store),
    };
  }

  function watchBudget(budget: WatchBudget): void {
    new Gauge({
      name: "skiff_apiserver_watch_buffer_bytes",
      help: "Bytes of watch events given to watchers and not yet taken by their clients (all watchers).",
      registers: [registry],
      collect() {
        this.set(budget.used());
      },
    });
    new Gauge({
      name: "skiff_apiserver_watch_buffer_limit_bytes",
      help: "Watch buffer budget: per watcher (scope=watcher) and for all watchers together (scope=total).",
      labelNames: ["scope"],
      registers: [registry],
      collect() {
        this.set({ scope: "watcher" }, budget.perWatcherBytes);
        this.set({ scope: "total" }, budget.totalBytes);
      },
    });
    new Counter({
      name: "skiff_apiserver_watch_cut_total",
      help: "Watches cut for being too slow: over their own budget (reason=watcher) or to bring all back under the total (reason=total).",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ reason: "watcher" }, budget.cuts.watcher);
        this.inc({ reason: "total" }, budget.cuts.total);
      },
    });
  }

  return { registry, interceptor, observe, watchers, instrument, watchBudget };
}
