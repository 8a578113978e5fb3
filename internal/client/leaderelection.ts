// Leader election on a Lease object through the API, after client-go's leaderelection package.
// Candidates race for one Lease; the holder renews it every retryPeriod; the others poll it and
// take it over once it has not changed for a whole lease duration.
//
//   candidate ──(lease free, expired, or absent: conditional write wins)──► leader
//       ▲                                                                      │
//       │        renewal failed for renewDeadline, or someone else holds it    │
//       └──── abort `stop` and `lost`, await the work, onStoppedLeading ◄──────┘
//
// On shutdown only `stop` aborts: the leader keeps renewing while its work winds down (finishing
// writes already under way is safe while the lease is ours), then releases the lease so that a
// standby takes over at once. Should renewal fail meanwhile, `lost` aborts too.
//
// Safety rests on three rules:
// - Every write is conditional (create, or update at the resource version we read): of two
//   candidates that saw the same expired lease, only one write succeeds.
// - A candidate judges expiry by its own monotonic clock, from the moment it *observed* the lease
//   record change, never by the holder's renewTime (clocks of two machines disagree).
// - A leader counts its renew deadline from the moment it *sent* its last successful renewal,
//   which is before any candidate could have observed that renewal. With renewDeadline <
//   leaseDuration, a leader that cannot renew stops before anyone may take over (leaving
//   leaseDuration - renewDeadline for its work to wind down).
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { LeaseSchema, type Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { InformerLogger } from "./informer.ts";
import { createResourceClient } from "./resource-client.ts";
import { sleep } from "../util/sleep.ts";

export interface LeaderElectionOptions {
  transport: Transport;
  leaseName: string;
  /** Where the Lease lives. Default "skiff-system". */
  namespace?: string;
  /** Unique among the candidates, e.g. "host_pid". */
  identity: string;
  /** How long a lease holds without renewal, as judged by the other candidates. Default 15 s. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long stops leading. Default 10 s. */
  renewDeadlineMs?: number;
  /** Between renewals, and between a candidate's attempts. Default 2 s. */
  retryPeriodMs?: number;
  /** On shutdown, give the lease up so that a standby takes over at once. Default true. */
  releaseOnCancel?: boolean;
  log?: InformerLogger;
  /**
   * Called when this candidate becomes leader. `signal` aborts when the work must stop: leadership
   * lost, or shutdown. `lost` aborts when the lease can no longer be counted on (renewal failed for
   * renewDeadline, or someone else holds it): from then on nothing may be written. On shutdown
   * `lost` stays quiet while the lease is still renewed, so in-flight work may finish. A returned
   * promise is awaited before onStoppedLeading runs, before this candidate competes again, and
   * before the lease is released; meanwhile the lease is renewed.
   */
  onStartedLeading: (signal: AbortSignal, lost: AbortSignal) => void | Promise<void>;
  /** Called after a term of leadership has ended (lost, or shut down). Not called if never leader. */
  onStoppedLeading: () => void;
  /** Called when the holder seen changes (including to this candidate, and to "" when released). */
  onNewLeader?: (identity: string) => void;
  /** Monotonic clock in ms. Default performance.now. */
  now?: () => number;
}

const nowMonotonic = () => performance.now();

/** Spreads the candidates' polls (client-go's JitterFactor 1.2 on the retry period). */
const jittered = (ms: number) => Math.round(ms * (1 + Math.random() * 0.2));

type Attempt = "acquired" | "held" | "failed";

/** Throws unless leaseDuration > renewDeadline > 1.2 × retryPeriod > 0 (client-go's rules). */
export function checkLeaderElectionTiming(t: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number }): void {
  if (!(t.retryPeriodMs > 0)) throw new Error("leader election: retryPeriod must be positive");
  if (!(t.leaseDurationMs > t.renewDeadlineMs)) throw new Error("leader election: leaseDuration must be greater than renewDeadline");
  if (!(t.renewDeadlineMs > t.retryPeriodMs * 1.2)) throw new Error("leader election: renewDeadline must be greater than 1.2 × retryPeriod");
}

/**
 * Runs for as long as `signal` is not aborted: competes for the lease, leads while it holds it,
 * competes again after losing it. Resolves after shutdown (the lease released if we held it).
 */
export async function runLeaderElection(opts: LeaderElectionOptions, signal: AbortSignal): Promise<void> {
  const namespace = opts.namespace ?? "skiff-system";
  const leaseDurationMs = opts.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = opts.retryPeriodMs ?? 2_000;
  const now = opts.now ?? nowMonotonic;
  const log = opts.log;
  const ctx = { lease: `${namespace}/${opts.leaseName}`, identity: opts.identity };
  if (opts.identity === "") throw new Error("leader election: identity must not be empty");
  checkLeaderElectionTiming({ leaseDurationMs, renewDeadlineMs, retryPeriodMs });
  const leaseSeconds = Math.max(1, Math.ceil(leaseDurationMs / 1000));
  const leases = createResourceClient<Lease>(opts.transport, "Lease");

  /** The last lease we read or wrote, and when (our clock) we first saw that record. */
  let observed: { lease: Lease; at: number } | undefined;
  let lastHolder: string | undefined;

  const noteHolder = (holder: string) => {
    if (holder === lastHolder) return;
    lastHolder = holder;
    log?.info({ ...ctx, holder }, "leader election: new leader observed");
    try {
      opts.onNewLeader?.(holder);
    } catch (err) {
      log?.error({ ...ctx, err: String(err) }, "leader election: onNewLeader failed");
    }
  };

  const sameRecord = (a: Lease, b: Lease) => {
    const x = a.spec;
    const y = b.spec;
    return (
      x?.holderIdentity === y?.holderIdentity &&
      x?.leaseTransitions === y?.leaseTransitions &&
      x?.leaseDurationSeconds === y?.leaseDurationSeconds &&
      x?.renewTime?.seconds === y?.renewTime?.seconds &&
      x?.renewTime?.nanos === y?.renewTime?.nanos &&
      x?.acquireTime?.seconds === y?.acquireTime?.seconds &&
      x?.acquireTime?.nanos === y?.acquireTime?.nanos
    );
  };

  /** One attempt to create, take over or renew the lease. `timeoutMs` bounds each call. */
  async function tryAcquireOrRenew(timeoutMs: number, callSignal: AbortSignal): Promise<Attempt> {
    const sentAt = now();
    const wall = Date.now();
    const call = { signal: callSignal, timeoutMs: Math.max(1, Math.round(timeoutMs)) };
    let cur: Lease;
    try {
      cur = await leases.get(namespace, opts.leaseName, call);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.NotFound) {
        log?.debug({ ...ctx, err: String(err) }, "leader election: reading the lease failed");
        return "failed";
      }
      const fresh = create(LeaseSchema, {
        metadata: { name: opts.leaseName, namespace },
        spec: {
          holderIdentity: opts.identity,
          leaseDurationSeconds: leaseSeconds,
          acquireTime: timestampFromMs(wall),
          renewTime: timestampFromMs(wall),
          leaseTransitions: 0,
        },
      });
      try {
        observed = { lease: await leases.create(fresh, call), at: sentAt };
        noteHolder(opts.identity);
        return "acquired";
      } catch (e) {
        log?.debug({ ...ctx, err: String(e) }, "leader election: creating the lease failed");
        return "failed"; // AlreadyExists: someone was faster; read it next time
      }
    }
    if (!observed || !sameRecord(observed.lease, cur)) observed = { lease: cur, at: now() };
    const holder = cur.spec?.holderIdentity ?? "";
    noteHolder(holder);
    const durationMs = (cur.spec?.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder !== "" && holder !== opts.identity && observed.at + durationMs > now()) return "held";

    const mine = holder === opts.identity;
    const next = create(LeaseSchema, {
      metadata: cur.metadata, // carries the resource version: the update is conditional
      spec: {
        holderIdentity: opts.identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: mine ? cur.spec?.acquireTime : timestampFromMs(wall),
        renewTime: timestampFromMs(wall),
        leaseTransitions: (cur.spec?.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    });
    try {
      observed = { lease: await leases.update(next, call), at: sentAt };
      noteHolder(opts.identity);
      return "acquired";
    } catch (err) {
      log?.debug({ ...ctx, err: String(err) }, "leader election: writing the lease failed");
      return "failed"; // Aborted (conflict): someone else wrote it first
    }
  }

  /** Candidate: tries every retryPeriod until it holds the lease. undefined on shutdown. */
  async function acquire(): Promise<{ sentAt: number } | undefined> {
    log?.info(ctx, "leader election: attempting to acquire the lease");
    while (!signal.aborted) {
      const sentAt = now();
      if ((await tryAcquireOrRenew(retryPeriodMs * 2, signal)) === "acquired") {
        log?.info(ctx, "leader election: acquired the lease");
        return { sentAt };
      }
      await sleep(jittered(retryPeriodMs), signal);
    }
    return undefined;
  }

  /** Leader: renews every retryPeriod until `until` aborts ("stopped") or it fails ("lost"). */
  async function renew(lastRenewSentAt: number, until: AbortSignal): Promise<"lost" | "stopped"> {
    for (;;) {
      await sleep(retryPeriodMs, until);
      if (until.aborted) return "stopped";
      for (;;) {
        const remaining = lastRenewSentAt + renewDeadlineMs - now();
        if (remaining <= 0) {
          log?.warn({ ...ctx, renewDeadlineMs }, "leader election: could not renew the lease in time; stepping down");
          return "lost";
        }
        const sentAt = now();
        const r = await tryAcquireOrRenew(remaining, until);
        if (until.aborted) return "stopped";
        if (r === "acquired") {
          lastRenewSentAt = sentAt;
          break;
        }
        if (r === "held") {
          log?.warn({ ...ctx, holder: observed?.lease.spec?.holderIdentity }, "leader election: the lease is held by another; stepping down");
          return "lost";
        }
        await sleep(Math.min(retryPeriodMs, Math.max(1, lastRenewSentAt + renewDeadlineMs - now())), until);
      }
    }
  }

  /**
   * Gives the lease up (holder "", expired) if we still hold it. It reads the lease first: a
   * renewal aborted by the shutdown may still have been written, so the version we last saw can be
   * stale, and a write at it would fail and leave the standby waiting out the whole lease. A
   * conflict (a late renewal of ours landing in between) is read and tried again.
   */
  async function release(): Promise<void> {
    const call = { timeoutMs: Math.max(1000, retryPeriodMs) };
    for (let attempt = 1; ; attempt++) {
      let lease: Lease;
      try {
        lease = await leases.get(namespace, opts.leaseName, call);
      } catch (err) {
        log?.warn({ ...ctx, err: String(err) }, "leader election: could not read the lease to release it; it will expire");
        return;
      }
      if (lease.spec?.holderIdentity !== opts.identity) return; // someone else's now: nothing to give up
      const next = create(LeaseSchema, {
        metadata: lease.metadata, // conditional on the version just read
        spec: {
          holderIdentity: "",
          leaseDurationSeconds: 1,
          acquireTime: lease.spec?.acquireTime,
          renewTime: timestampFromMs(Date.now() - leaseDurationMs - 1000),
          leaseTransitions: lease.spec?.leaseTransitions ?? 0,
        },
      });
      try {
        await leases.update(next, call);
        log?.info(ctx, "leader election: released the lease");
        return;
      } catch (err) {
        if (ConnectError.from(err).code === Code.Aborted && attempt < 3) continue;
        log?.warn({ ...ctx, err: String(err) }, "leader election: releasing the lease failed; it will expire");
        return;
      }
    }
  }

  while (!signal.aborted) {
    const won = await acquire();
    if (!won) break;
    if (signal.aborted) {
      if (opts.releaseOnCancel ?? true) await release();
      break;
    }
    const stop = new AbortController();
    const lost = new AbortController();
    const stopRenewing = new AbortController();
    const renewing = renew(won.sentAt, stopRenewing.signal).then((r) => {
      if (r === "lost") {
        const reason = new Error("leadership lost");
        lost.abort(reason);
        stop.abort(reason);
      }
      return r;
    });
    const onShutdown = () => stop.abort(new Error("shutting down"));
    if (signal.aborted) onShutdown();
    else signal.addEventListener("abort", onShutdown, { once: true });
    const work = Promise.resolve()
      .then(() => opts.onStartedLeading(stop.signal, lost.signal))
      .catch((err) => log?.error({ ...ctx, err: String(err) }, "leader election: onStartedLeading failed"));
    await new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      else stop.signal.addEventListener("abort", () => resolve(), { once: true });
    });
    await work; // renewals go on while the work winds down
    signal.removeEventListener("abort", onShutdown);
    stopRenewing.abort();
    const outcome = await renewing;
    try {
      opts.onStoppedLeading();
    } catch (err) {
      log?.error({ ...ctx, err: String(err) }, "leader election: onStoppedLeading failed");
    }
    if (signal.aborted) {
      if (outcome !== "lost" && (opts.releaseOnCancel ?? true)) await release();
      break;
    }
    log?.info(ctx, "leader election: lost the lease; competing again");
  }
}
