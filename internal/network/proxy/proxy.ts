// The service proxy of a node agent: Service and Endpoints informers (all namespaces) feed one
// sync loop that writes the whole nftables table (ruleset.ts) whenever what it would write
// changed, at most every minSyncIntervalMs, and re-writes it every resyncMs whatever happened
// (repairing rules someone else changed or removed).
//
//   informer events ──► requestSync ──(coalesced, ≥ minSyncIntervalMs apart)──► sync:
//       buildModel ─► buildRuleset ─► same as last time? done : nft -f ─► conntrack (UDP)
//
// A sync after a change sends only the difference (renderChanges: the chains and map elements
// of the Services that changed) in one transaction; the first sync, the periodic one and any
// sync after a failed transaction write the whole table.
//
// The table is first written once both informers have synced, so a restarted agent leaves the
// previous agent's rules in place until it can replace them with complete ones.
import type { Transport } from "@connectrpc/connect";
import os from "node:os";
import type { Endpoints } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Service } from "../../../gen/skiff/v1alpha1/service_pb.js";
import { createSharedInformerFactory, type InformerLogger, type SharedInformerFactory } from "../../client/informer.ts";
import { parseIPv4 } from "../conflist.ts";
import { applyRuleset, bridgeNetfilterOn, deleteTable, flushConntrack, readAffinity, type ConntrackResult } from "./kernel.ts";
import { buildModel, udpFlushes, type ProxyModel, type UdpFlush } from "./model.ts";
import { buildRuleset, normalizeServiceCidr, renderChanges, renderTable, type AffinityClient, type TableState } from "./ruleset.ts";

export const DEFAULT_TABLE = "skiff-proxy";

/** What the proxy does to the host (kernel.ts); unit tests record it instead. */
export interface ProxyKernel {
  apply(text: string): Promise<void>;
  deleteTable(name: string): Promise<void>;
  flushConntrack(f: UdpFlush): Promise<ConntrackResult>;
  bridgeNetfilterOn(): boolean;
  /** The clients in the table's session affinity sets, by set, kept across a whole write. */
  readAffinity(table: string): Promise<Map<string, AffinityClient[]>>;
}

const hostKernel: ProxyKernel = { apply: applyRuleset, deleteTable, flushConntrack, bridgeNetfilterOn, readAffinity };

export interface ServiceProxyOptions {
  transport: Transport;
  log: InformerLogger;
  /** This node's name: Endpoints addresses with it are the local backends (traffic policies "Local"). */
  nodeName?: string;
  /**
   * Service and Endpoints informers from a factory the caller starts and stops (the node agent
   * shares its own, so a node keeps one watch per kind). Default: a factory of the proxy's own.
   */
  informers?: SharedInformerFactory;
  /** The nft table (family ip) this proxy owns. Default "skiff-proxy". */
  table?: string;
  /** The node's pod CIDR: masqueraded towards local backends when br_netfilter is off. */
  podCidr?: string;
  /** The cluster's Service range: its addresses no Service holds are rejected (ruleset.ts). */
  serviceCidr?: string;
  /** Addresses NodePorts answer on. Default: the host's IPv4 addresses except loopback, read at every sync. */
  nodeAddresses?: () => string[];
  /** Least time between two syncs (changes in between are coalesced). Default 200 ms. */
  minSyncIntervalMs?: number;
  /** The table is re-written this often even without changes. Default 30 s. */
  resyncMs?: number;
  /** Remove the table when the proxy stops. Default false: the rules outlive the agent. */
  cleanup?: boolean;
  /** Called after every sync that wrote the table (benchmarks, tests). */
  onApplied?: (info: { model: ProxyModel; rules: number; durationMs: number }) => void;
  /** Default: nft and conntrack on this host. */
  kernel?: ProxyKernel;
}

export interface ProxyStats {
  /** Syncs that wrote the table. */
  applied: number;
  /** Rules + map/set elements of the last table written. */
  rules: number;
  lastSyncMs: number;
  lastError?: string;
}

export interface ServiceProxy {
  /** Starts the informers; the first sync follows their initial lists. */
  start(signal?: AbortSignal): void;
  /** Resolves once the table has been written the first time. */
  waitForFirstSync(signal?: AbortSignal): Promise<void>;
  /** Stops syncing (waits for a sync under way); with `cleanup`, removes the table. */
  stop(): Promise<void>;
  stats(): ProxyStats;
}

/** The host's IPv4 addresses other than loopback. */
export function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === "IPv4" && !a.internal && !a.address.startsWith("127.") && parseIPv4(a.address) !== undefined) out.push(a.address);
    }
  }
  return out;
}

export function createServiceProxy(opts: ServiceProxyOptions): ServiceProxy {
  const { log } = opts;
  const table = opts.table ?? DEFAULT_TABLE;
  const minInterval = opts.minSyncIntervalMs ?? 200;
  const resyncMs = opts.resyncMs ?? 30_000;
  const nodeAddresses = opts.nodeAddresses ?? hostAddresses;
  const kernel = opts.kernel ?? hostKernel;
  // A bad range is the operator's mistake: refuse at start, not at every sync.
  const serviceCidr = opts.serviceCidr ? normalizeServiceCidr(opts.serviceCidr) : undefined;
  const ownsInformers = opts.informers === undefined;
  const informers = opts.informers ?? createSharedInformerFactory(opts.transport, { log });
  const services = informers.informerFor<Service>("Service");
  const endpoints = informers.informerFor<Endpoints>("Endpoints");
  const stopping = new AbortController();

  let synced = false;
  let dirty = false;
  let forced = false;
  let running: Promise<void> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let resyncTimer: ReturnType<typeof setInterval> | undefined;
  let lastStart = 0;
  let lastText = "";
  let lastState: TableState | undefined;
  let lastModel: ProxyModel | undefined;
  let warnedConntrack = false;
  let failures = 0;
  let lastSkipped = "";
  const stats: ProxyStats = { applied: 0, rules: 0, lastSyncMs: 0 };
  let firstSync!: () => void;
  const firstSynced = new Promise<void>((r) => (firstSync = r));

  function schedule(delayMs = 0): void {
    if (!synced || running || timer || stopping.signal.aborted) return;
    const wait = Math.max(delayMs, lastStart + minInterval - Date.now(), 0);
    timer = setTimeout(() => {
      timer = undefined;
      running = syncOnce().finally(() => {
        running = undefined;
        if (dirty) schedule();
      });
    }, wait);
  }

  function requestSync(force = false): void {
    dirty = true;
    if (force) forced = true;
    schedule();
  }

  async function syncOnce(): Promise<void> {
    if (stopping.signal.aborted) return;
    dirty = false;
    const force = forced;
    forced = false;
    lastStart = Date.now();
    const t0 = performance.now();
    try {
      const model = buildModel(services.list(), endpoints.list(), opts.nodeName);
      const ruleset = buildRuleset(model, {
        table,
        nodeAddresses: nodeAddresses(),
        masqueradePodCidr: opts.podCidr && !kernel.bridgeNetfilterOn() ? opts.podCidr : undefined,
        podCidr: opts.podCidr,
        serviceCidr,
      });
      const skipped = JSON.stringify([...model.skipped, ...ruleset.skipped]);
      if (skipped !== lastSkipped && skipped !== "[]") log.warn({ skipped: JSON.parse(skipped) }, "service ports not proxied");
      lastSkipped = skipped;
      if (!force && ruleset.text === lastText) return;
      let whole = force || lastState === undefined;
      if (!whole) {
        try {
          const changes = renderChanges(lastState!, ruleset.state);
          if (changes === undefined) whole = true;
          else await kernel.apply(changes);
        } catch (err) {
          log.warn({ err: err instanceof Error ? err.message.slice(0, 500) : String(err) }, "incremental rule update failed; writing the whole table");
          whole = true;
        }
      }
      lastState = undefined; // unknown until this write succeeds
      if (whole) {
        // The table is replaced as a whole: its affinity sets keep their clients only if written back.
        const carried = ruleset.state.affinitySets.size > 0 ? await kernel.readAffinity(table) : undefined;
        await kernel.apply(carried && carried.size > 0 ? renderTable(ruleset.state, carried) : ruleset.text);
      }
      lastState = ruleset.state;
      const durationMs = performance.now() - t0;
      const first = stats.applied === 0;
      lastText = ruleset.text;
      stats.applied++;
      stats.rules = ruleset.rules;
      stats.lastSyncMs = durationMs;
      stats.lastError = undefined;
      failures = 0;
      // A restarted agent does not know what the last one flushed: only changes it saw itself.
      if (lastModel) {
        const flush = udpFlushes(lastModel, model);
        if (flush.removedBackends.length + flush.newlyServed.length > 0) {
          const r = await kernel.flushConntrack(flush).catch((err: unknown) => {
            log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not flush UDP conntrack entries");
            return "done" as const;
          });
          if (r === "missing" && !warnedConntrack) {
            warnedConntrack = true;
            log.warn({}, "no conntrack binary: UDP flows to removed backends last until their conntrack entry times out");
          }
        }
      }
      lastModel = model;
      const facts = { table, servicePorts: model.ports.length, rules: ruleset.rules, durationMs: Math.round(durationMs * 10) / 10, whole };
      if (first) {
        log.info(facts, "service proxy rules written");
        firstSync();
      } else log.debug(facts, "service proxy rules written");
      opts.onApplied?.({ model, rules: ruleset.rules, durationMs });
    } catch (err) {
      stats.lastError = err instanceof Error ? err.message : String(err);
      // 1 s doubling to 30 s: a host without nft must not fill the log.
      const retryMs = Math.min(1000 * 2 ** failures++, 30_000);
      log.error({ err: stats.lastError, table, retryInMs: retryMs }, "service proxy sync failed; retrying");
      dirty = true;
      forced = forced || force;
      lastStart = Date.now() + retryMs - minInterval;
    }
  }

  let stopped: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopped ??= (async () => {
      stopping.abort();
      clearTimeout(timer);
      clearInterval(resyncTimer);
      if (ownsInformers) await informers.stop();
      await running;
      if (opts.cleanup) {
        await kernel.deleteTable(table);
        log.info({ table }, "service proxy rules removed");
      }
    })();
    return stopped;
  }

  for (const inf of [services, endpoints] as const) {
    inf.onAdd(() => requestSync());
    inf.onUpdate(() => requestSync());
    inf.onDelete(() => requestSync());
  }

  return {
    start(signal) {
      signal?.addEventListener("abort", () => void stop().catch(() => undefined), { once: true });
      if (ownsInformers) informers.start(stopping.signal);
      informers
        .waitForSync(stopping.signal)
        .then(() => {
          synced = true;
          requestSync(true);
          resyncTimer = setInterval(() => requestSync(true), resyncMs);
        })
        .catch(() => undefined);
    },
    async waitForFirstSync(signal) {
      if (signal?.aborted) throw new Error("aborted");
      await Promise.race([
        firstSynced,
        new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true })),
      ]);
    },
    stop,
    stats: () => ({ ...stats }),
  };
}
