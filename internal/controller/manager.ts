// The controller-manager: runs a set of controllers in one process over one shared informer
// factory, while (and only while) this process holds the leader lease.
//
//   runLeaderElection ──leading──► term: fenced transport ─► informers ─► controllers (from all.ts)
//                     ◄──lost/stop── abort: controllers and informers stop, the fence refuses calls
//
// Each term of leadership starts from nothing: a new informer factory (a fresh list of every
// kind, so nothing stale from an earlier term survives), new controllers, new expectations.
// Every call a term's controllers make goes through a fence: when the lease is lost, the fence
// goes up and every call fails at once, including calls already in flight, so a controller that
// is slow to notice cannot keep writing. On shutdown the queues stop, reconciles under way may
// finish their writes while the lease is still renewed (up to drainTimeoutMs), then the fence
// goes up and the lease is released: the standby that takes over lists a settled state.
// A term whose controllers cannot all be built (a factory throws) fails: the manager stops,
// releases the lease and reports the error through wait(), as controller-runtime's manager
// returns from Start — leading with a controller missing would look healthy and do nothing.
import { componentLog } from "../log/log.ts";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import os from "node:os";
import type { Logger } from "pino";
import { createEventRecorder } from "../client/events.ts";
import { createSharedInformerFactory } from "../client/informer.ts";
import { checkLeaderElectionTiming, runLeaderElection } from "../client/leaderelection.ts";
import { controllers as allControllers } from "./all.ts";
import type { Controller, ControllerConfig, ControllerFactory } from "./controller.ts";
import { sleep } from "../util/sleep.ts";

export interface ControllerManagerOptions {
  /** "*" for all, names, and "-name" to leave one out (`["*", "-gc"]`). Default ["*"]. */
  controllers?: string[];
  /** Compete for a lease and run controllers only while holding it. Default true. */
  leaderElect?: boolean;
  /** Default "skiff-controller-manager". */
  leaseName?: string;
  /** Default "skiff-system". */
  leaseNamespace?: string;
  /** Unique per process. Default `<hostname>_<pid>`. */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** On shutdown, how long reconciles under way may go on to finish their writes. Default 10 s. */
  drainTimeoutMs?: number;
  /** Settings for the controllers (ControllerContext.options). */
  config?: Partial<ControllerConfig>;
  /** The controllers to choose from. Default: all.ts. */
  factories?: Record<string, ControllerFactory>;
}

export interface ControllerManager {
  /** The controllers this manager runs when leading. */
  readonly controllers: readonly string[];
  readonly identity: string;
  /** Starts competing (or, without leader election, running). Returns at once. */
  start(signal?: AbortSignal): Promise<void>;
  /** Stops the controllers, then releases the lease. Resolves when all is stopped. */
  stop(): Promise<void>;
  /**
   * Resolves once the manager has stopped (after stop() or its signal); rejects with a
   * ControllerStartError when a term failed to start its controllers (the manager then stopped
   * and released the lease on its own). The process should exit non-zero.
   */
  wait(): Promise<void>;
  /** Holds the lease and has not been asked to stop (or runs without election). */
  isLeading(): boolean;
  /** Controllers are running: leading, and the informers have synced. */
  isRunning(): boolean;
}

/** Resolves the `--controllers` list against the known names. Throws on an unknown name. */
export function selectControllers(spec: readonly string[], known: readonly string[]): string[] {
  const items = spec.map((s) => s.trim()).filter((s) => s !== "");
  for (const item of items) {
    const name = item.startsWith("-") ? item.slice(1) : item;
    if (name !== "*" && !known.includes(name)) throw new Error(`unknown controller "${name}"; known: ${known.join(", ")}`);
  }
  const all = items.includes("*");
  return known.filter((n) => !items.includes(`-${n}`) && (all || items.includes(n)));
}

/** A transport whose calls all fail, in flight or new, once `signal` aborts. */
export function fencedTransport(inner: Transport, signal: AbortSignal): Transport {
  const fenced = () => new ConnectError("controller-manager is no longer leading", Code.Canceled);
  const combine = (s: AbortSignal | undefined) => (s ? AbortSignal.any([s, signal]) : signal);
  return {
    unary(method, s, timeoutMs, header, input, contextValues) {
      if (signal.aborted) return Promise.reject(fenced());
      return inner.unary(method, combine(s), timeoutMs, header, input, contextValues);
    },
    stream(method, s, timeoutMs, header, input, contextValues) {
      if (signal.aborted) return Promise.reject(fenced());
      return inner.stream(method, combine(s), timeoutMs, header, input, contextValues);
    },
  };
}

/** A controller of the term could not be built, or the term's informers never synced. */
export class ControllerStartError extends Error {
  override name = "ControllerStartError";
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

export function createControllerManager(args: { transport: Transport; log: Logger; options?: ControllerManagerOptions }): ControllerManager {
  const { transport, log } = args;
  const o = args.options ?? {};
  const factories = o.factories ?? allControllers;
  const names = selectControllers(o.controllers ?? ["*"], Object.keys(factories));
  const identity = o.identity || `${os.hostname()}_${process.pid}`;
  if (o.leaderElect !== false) {
    checkLeaderElectionTiming({ leaseDurationMs: o.leaseDurationMs ?? 15_000, renewDeadlineMs: o.renewDeadlineMs ?? 10_000, retryPeriodMs: o.retryPeriodMs ?? 2_000 });
  }
  const drainTimeoutMs = o.drainTimeoutMs ?? 10_000;
  const shutdown = new AbortController();
  let leading = false;
  let running = false;
  let done: Promise<void> | undefined;
  let failure: ControllerStartError | undefined;

  /**
   * One term of leadership: build, sync, run until `stop` aborts, then stop everything. In-flight
   * reconciles may finish their writes (for up to drainTimeoutMs) unless `lost` aborts: then the
   * fence goes up at once and every call still under way fails.
   */
  async function runTerm(stop: AbortSignal, lost: AbortSignal): Promise<void> {
    const fence = new AbortController();
    const raiseFence = () => fence.abort(new Error("leadership lost"));
    if (lost.aborted) raiseFence();
    else lost.addEventListener("abort", raiseFence, { once: true });
    const fenced = fencedTransport(transport, fence.signal);
    const informers = createSharedInformerFactory(fenced, { log: componentLog(log, "informer") });
    const recorder = createEventRecorder({ transport: fenced, component: "controller-manager", host: identity, log });
    const started: Controller[] = [];
    try {
      for (const name of names) {
        try {
          started.push(factories[name]({ transport: fenced, informers, recorder, log: log.child({ controller: name }), options: o.config }));
        } catch (err) {
          throw new ControllerStartError(`controller "${name}" could not be created: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
      }
      informers.start(fence.signal);
      try {
        await informers.waitForSync(stop);
      } catch (err) {
        if (stop.aborted) return;
        throw new ControllerStartError(`the controllers' informers did not sync: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      for (const c of started) c.run();
      running = true;
      log.info({ controllers: started.map((c) => c.name) }, "controllers running");
      await waitForAbort(stop);
    } finally {
      running = false;
      // Queues stop taking keys now; reconciles under way finish, unless the lease is lost.
      const stopped = Promise.all(started.map((c) => c.stop()));
      if (!fence.signal.aborted) {
        const timer = new AbortController();
        await Promise.race([stopped, waitForAbort(fence.signal), sleep(drainTimeoutMs, timer.signal)]);
        timer.abort();
      }
      fence.abort(new Error("controllers stopped"));
      await stopped;
      await informers.stop();
      lost.removeEventListener("abort", raiseFence);
      log.info("controllers stopped");
    }
  }

  /** Runs a term; a term that fails to start stops the whole manager (and so releases the lease). */
  async function term(stop: AbortSignal, lost: AbortSignal): Promise<void> {
    try {
      await runTerm(stop, lost);
    } catch (err) {
      failure = err instanceof ControllerStartError ? err : new ControllerStartError(String(err), { cause: err });
      log.error({ err: failure.message }, "controllers failed to start; giving up the lease and stopping");
      shutdown.abort();
    }
  }

  async function run(): Promise<void> {
    const signal = shutdown.signal;
    if (o.leaderElect === false) {
      leading = true;
      signal.addEventListener("abort", () => (leading = false), { once: true });
      await term(signal, new AbortController().signal);
      return;
    }
    await runLeaderElection(
      {
        transport,
        leaseName: o.leaseName ?? "skiff-controller-manager",
        namespace: o.leaseNamespace ?? "skiff-system",
        identity,
        leaseDurationMs: o.leaseDurationMs,
        renewDeadlineMs: o.renewDeadlineMs,
        retryPeriodMs: o.retryPeriodMs,
        log: componentLog(log, "leaderelection"),
        onStartedLeading: async (stop, lost) => {
          leading = true;
          stop.addEventListener("abort", () => (leading = false), { once: true });
          log.info({ identity }, "became leader; starting controllers");
          await term(stop, lost);
        },
        onStoppedLeading: () => log.info({ identity }, "stopped leading"),
      },
      signal,
    );
  }

  return {
    controllers: names,
    identity,
    async start(signal) {
      if (done) return;
      signal?.addEventListener("abort", () => shutdown.abort(), { once: true });
      if (signal?.aborted) shutdown.abort();
      done = run().catch((err) => log.error({ err: String(err) }, "controller-manager stopped with an error"));
    },
    async stop() {
      shutdown.abort();
      await done;
    },
    async wait() {
      await (done ?? waitForAbort(shutdown.signal));
      if (failure) throw failure;
    },
    isLeading: () => leading,
    isRunning: () => running,
  };
}
