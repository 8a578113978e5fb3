// The etcd store's connections, one set per member: a KV transport (Skiff's lean gRPC client) and
// an etcd3 client for the watch stream. With `autoSyncIntervalMs` they follow the cluster as etcd's
// clientv3 AutoSyncInterval does: the member list is read periodically (and on syncEndpoints()),
// members added since are connected to, removed ones dropped. Nothing here runs per request.
import { createClient, type Client } from "@connectrpc/connect";
import { Etcd3, type IMember, type IOptions } from "etcd3";
import { KV } from "../../gen/etcd/api/etcdserverpb/rpc_pb.js";
import { createGrpcTransport, type GrpcTransport } from "../client/grpc-transport.ts";
import type { EtcdTls } from "./etcd.ts";

export interface MemberConnection {
  url: string;
  transport: GrpcTransport;
  kv: Client<typeof KV>;
  /** Made while there were several endpoints (its connect timeout is set). */
  several: boolean;
}

export interface EtcdConnectionsOptions {
  endpoints: string[];
  tls?: EtcdTls;
  maxResponseBytes?: number;
  dialTimeoutMs: number;
  /** The longest deadline of a call: connections replaced are closed this long after (their calls end first). */
  requestTimeoutMs: number;
  autoSyncIntervalMs?: number;
  /** After every change of the endpoints (the previous ones given): the store keeps using the member it used. */
  onChange(previous: string[]): void;
}

export interface EtcdConnections {
  /** KV connections in order of preference; replaced by a new array when the endpoints change. */
  kv: MemberConnection[];
  /** Watch clients, one per member in the same order; changed in place (the watch factory holds it). */
  watchClients: Etcd3[];
  endpoints(): string[];
  /** Reads etcd's member list and follows it; answers the endpoints now in use. */
  sync(): Promise<string[]>;
  close(): void;
}

/** etcd's default --max-request-bytes (1.5 MiB) plus the 512 KiB it allows gRPC on top. */
const ETCD_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024 + 512 * 1024;

// etcd3 (now only the watch) retries failed calls up to 3 times by default and opens a 5s
// circuit breaker after 3 failures; the breaker would keep a watch from resuming after etcd is
// back, so both are off.
const noRetry = { execute: async (fn: (ctx: { signal: AbortSignal }) => unknown) => fn({ signal: new AbortController().signal }) };
type FaultHandling = NonNullable<IOptions["faultHandling"]>;

export function createEtcdConnections(opts: EtcdConnectionsOptions): EtcdConnections {
  function connectKv(url: string, several: boolean): MemberConnection {
    // etcd takes requests up to --max-request-bytes (1.5 MiB by default) plus gRPC's overhead; a
    // larger one is refused here, at once, rather than pushed through flow control to be refused.
    const transport = createGrpcTransport({
      baseUrl: url,
      tls: url.startsWith("https:") ? opts.tls : undefined,
      writeMaxBytes: ETCD_MAX_REQUEST_BYTES,
      readMaxBytes: opts.maxResponseBytes,
      // With one member there is nowhere to go: waiting out the call's deadline is better than failing early.
      connectTimeoutMs: several ? opts.dialTimeoutMs : undefined,
    });
    return { url, transport, kv: createClient(KV, transport), several };
  }
  // One etcd3 client (one watch stream) per member, so that the watch factory, not etcd3's random
  // pick, chooses the member: it starts on the first and moves on when a stream breaks.
  const connectWatch = (url: string) =>
    new Etcd3({
      hosts: url,
      credentials: opts.tls ? { rootCertificate: Buffer.from(opts.tls.ca), certChain: Buffer.from(opts.tls.cert), privateKey: Buffer.from(opts.tls.key) } : undefined,
      // grpc-js pings the stream's connection: a member that stopped answering (its machine gone,
      // no reset) breaks the stream within ~15 s. etcd refuses pings closer than 5 s apart.
      grpcOptions: { "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5000 },
      faultHandling: {
        host: () => noRetry as unknown as ReturnType<NonNullable<FaultHandling["host"]>>,
        global: noRetry as unknown as FaultHandling["global"],
      },
    });

  const several = opts.endpoints.length > 1;
  const conns: EtcdConnections = {
    kv: opts.endpoints.map((url) => connectKv(url, several)),
    watchClients: opts.endpoints.map(connectWatch),
    endpoints: () => conns.kv.map((m) => m.url),
    sync: () => (syncing = syncing.then(syncOnce, syncOnce)),
    close() {
      closed = true;
      clearInterval(timer);
      for (const close of retiring) close();
      for (const m of conns.kv) m.transport.close();
      for (const c of conns.watchClients) c.close();
    },
  };
  let closed = false;
  let syncing: Promise<string[]> = Promise.resolve([]);
  // Connections no longer used, closed once the calls on them have ended.
  const retiring = new Set<() => void>();
  const retire = (close: () => void) => {
    const done = () => {
      retiring.delete(done);
      close();
    };
    retiring.add(done);
    setTimeout(done, opts.requestTimeoutMs + 1000).unref();
  };

  async function memberList(): Promise<IMember[]> {
    let lastErr: unknown;
    for (const client of [...conns.watchClients]) {
      try {
        return (await client.cluster.memberList({}, { deadline: Date.now() + Math.max(opts.dialTimeoutMs, 1000) * 2 })).members;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  async function syncOnce(): Promise<string[]> {
    if (closed) return conns.endpoints();
    // Voting members that have started (an added member has no client URL until it has).
    const advertised = (await memberList()).filter((m) => !m.isLearner).flatMap((m) => m.clientURLs ?? []);
    if (closed || advertised.length === 0) return conns.endpoints();
    const previous = conns.endpoints();
    // The members in use keep their order (the first given stays preferred); new ones come after.
    const next = [...previous.filter((u) => advertised.includes(u)), ...advertised.filter((u) => !previous.includes(u))];
    if (next.length === previous.length && next.every((u, i) => u === previous[i])) return previous;
    const manyNow = next.length > 1;
    const keptKv = new Map(conns.kv.filter((m) => next.includes(m.url) && m.several === manyNow).map((m) => [m.url, m]));
    const keptWatch = new Map(previous.map((u, i) => [u, conns.watchClients[i]] as const).filter(([u]) => next.includes(u)));
    for (const m of conns.kv) if (keptKv.get(m.url) !== m) retire(() => m.transport.close());
    previous.forEach((u, i) => {
      const client = conns.watchClients[i];
      if (!next.includes(u)) retire(() => client.close());
    });
    conns.kv = next.map((u) => keptKv.get(u) ?? connectKv(u, manyNow));
    conns.watchClients.splice(0, conns.watchClients.length, ...next.map((u) => keptWatch.get(u) ?? connectWatch(u)));
    opts.onChange(previous);
    return next;
  }

  // Unref'd: a store nobody closed does not keep the process alive for its sync.
  const timer = opts.autoSyncIntervalMs ? setInterval(() => void conns.sync().catch(() => undefined), opts.autoSyncIntervalMs) : undefined;
  timer?.unref();
  return conns;
}
