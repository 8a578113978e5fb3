// A client transport over several apiservers (k3s' client load balancer, in the client): calls go
// to one server until it is unavailable, then to the next. A call that never reached its server
// (connection refused, host unreachable, a TLS handshake that failed) is sent on to the next one
// at once; a call that may have reached it (the connection dropped under it) fails UNAVAILABLE as
// before — its caller retries, and that retry (an informer's watch resuming from its last
// resource version, a controller's next attempt) goes to the next server.
//
// The servers: the ones given (flags, kubeconfig), always kept, plus those the `kubernetes`
// Endpoints in `default` list (every live apiserver publishes itself there:
// internal/apiserver/endpoint-leases.ts), read again every `discoveryIntervalMs` and after each
// move.
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { createResourceClient } from "./resource-client.ts";

/** Bounded: an Endpoints object cannot grow the list without end. */
const MAX_SERVERS = 64;

export interface FailoverOptions {
  /** The servers given (https URLs); the first is used first. */
  servers: string[];
  /** Makes the transport for one server. */
  connect: (url: string) => Transport & { close?(): void };
  /** Learn more servers from the `kubernetes` Endpoints. Default true. */
  discover?: boolean;
  /** How often the Endpoints are read again. Default 30 s. */
  discoveryIntervalMs?: number;
  /** Told when calls move to another server. */
  onMove?: (from: string, to: string, reason: string) => void;
  /** Told every apiserver the `kubernetes` Endpoints list, after each read of them (to keep them for the next start). */
  onDiscovered?: (servers: string[]) => void;
}

export interface FailoverTransport extends Transport {
  /** The server calls go to now. */
  current(): string;
  /** Every server known: given, then discovered. */
  servers(): string[];
  /** Reads the `kubernetes` Endpoints now. */
  discover(): Promise<void>;
  close(): void;
}

const UNREACHABLE = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN"]);

/** True when the call cannot have reached the server: it never connected, or TLS failed before any request. */
export function neverReached(err: unknown): boolean {
  if (!(err instanceof ConnectError) || err.code !== Code.Unavailable) return false;
  const code = String((err.cause as NodeJS.ErrnoException | undefined)?.code ?? "");
  return UNREACHABLE.has(code) || /CERT|TLS|SIGNATURE|ALTNAME/.test(code);
}

const normalize = (url: string) => new URL(url).origin;

export function createFailoverTransport(opts: FailoverOptions): FailoverTransport {
  if (opts.servers.length === 0) throw new RangeError("failover transport: no servers given");
  const given = [...new Set(opts.servers.map(normalize))];
  let discovered: string[] = [];
  let list = given;
  let current = list[0];
  const transports = new Map<string, Transport & { close?(): void }>();
  const transportFor = (url: string) => {
    let t = transports.get(url);
    if (!t) transports.set(url, (t = opts.connect(url)));
    return t;
  };

  /** Moves calls off `from` (if they still go there) to the next server in the list. */
  function moveFrom(from: string, reason: string): void {
    if (current !== from || list.length < 2) return;
    const i = list.indexOf(from);
    current = list[(i + 1) % list.length];
    opts.onMove?.(from, current, reason);
    void refresh();
  }

  let refreshing: Promise<void> | undefined;
  function refresh(): Promise<void> {
    if (opts.discover === false) return Promise.resolve();
    refreshing ??= (async () => {
      try {
        const ep = (await createResourceClient<Endpoints>(self, "Endpoints").get("default", "kubernetes", { timeoutMs: 5000 })) as Endpoints;
        const urls: string[] = [];
        for (const s of ep.subsets) {
          const port = s.ports.find((p) => p.name === "https")?.port ?? s.ports[0]?.port;
          if (!port) continue;
          for (const a of s.addresses) urls.push(normalize(`https://${a.ip.includes(":") ? `[${a.ip}]` : a.ip}:${port}`));
        }
        const listed = [...new Set(urls)].slice(0, MAX_SERVERS);
        discovered = listed.filter((u) => !given.includes(u));
        list = [...given, ...discovered];
        // The current server stays in use while it works, even if the Endpoints no longer list it.
        if (!list.includes(current)) list.push(current);
        opts.onDiscovered?.(listed);
      } catch {
        // No Endpoints, no permission to read them, no server up: keep what we know.
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  }
  const timer = opts.discover === false ? undefined : setInterval(() => void refresh(), opts.discoveryIntervalMs ?? 30_000);
  timer?.unref();

  /** Runs `attempt` on the current server, and on the next ones while the call never reached one. */
  async function withFailover<T>(attempt: (t: Transport) => Promise<T>): Promise<T> {
    const tries = list.length;
    for (let i = 0; ; i++) {
      const at = current;
      try {
        return await attempt(transportFor(at));
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.Unavailable) moveFrom(at, err.message);
        if (!neverReached(err) || i + 1 >= tries) throw err;
      }
    }
  }

  const self: FailoverTransport = {
    unary<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0], input: MessageInitShape<I>, contextValues?: ContextValues): Promise<UnaryResponse<I, O>> {
      return withFailover((t) => t.unary(method, signal, timeoutMs, header, input, contextValues));
    },

    async stream<I extends DescMessage, O extends DescMessage>(method: DescMethodStreaming<I, O>, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0], input: AsyncIterable<MessageInitShape<I>>, contextValues?: ContextValues): Promise<StreamResponse<I, O>> {
      // Server streaming: one request message, kept so the call can be sent again.
      const requests: MessageInitShape<I>[] = [];
      for await (const m of input) requests.push(m);
      let used = current;
      const res = await withFailover(async (t) => {
        used = current;
        const r = await t.stream(method, signal, timeoutMs, header, (async function* () {
          yield* requests;
        })(), contextValues);
        // A server that cannot be reached fails before the first message: look at it here, so
        // that the call moves on instead of failing.
        const it = r.message[Symbol.asyncIterator]();
        const first = await it.next();
        return { r, it, first };
      });
      const server = used;
      async function* messages() {
        try {
          if (res.first.done) return;
          yield res.first.value;
          for (;;) {
            const n = await res.it.next();
            if (n.done) return;
            yield n.value;
          }
        } catch (err) {
          if (err instanceof ConnectError && err.code === Code.Unavailable) moveFrom(server, err.message);
          throw err;
        } finally {
          await res.it.return?.();
        }
      }
      return { ...res.r, message: messages() };
    },

    current: () => current,
    servers: () => [...list],
    discover: refresh,
    close() {
      clearInterval(timer);
      for (const t of transports.values()) t.close?.();
    },
  };
  void refresh();
  return self;
}
