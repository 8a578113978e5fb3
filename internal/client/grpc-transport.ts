// A lean gRPC transport for connect clients: plain gRPC (application/grpc+proto, uncompressed)
// over one HTTP/2 connection per transport, unary and server-streaming calls. connect-node's own
// gRPC transport runs every message through a pipeline of async iterables and builds Headers,
// AbortControllers and envelopes per call; in the scale benchmark that machinery cost every
// component (scheduler, controller-manager, node agents) more CPU than its own work. This one
// hands each response frame straight to protobuf. Connect clients (createClient) use it
// unchanged: errors are ConnectErrors with the gRPC code and message, deadlines and abort
// signals cancel the call.
import { create, isMessage, type DescMethod } from "@bufbuild/protobuf";
import { decodeMessage, encodeMessage } from "../api/codec/index.ts";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { abortError, DeferredHeaders, frame, httpStatusCode, statusError } from "./grpc-wire.ts";

export interface GrpcTransportOptions {
  /** http://host:port (h2c) or https://… */
  baseUrl: string;
  /** Pings an active connection this often; no answer within pingTimeoutMs closes it. Default 10 s. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** A connection with no call for this long is closed. Default 60 s. */
  idleConnectionTimeoutMs?: number;
  /** Larger response messages fail with RESOURCE_EXHAUSTED. Default 64 MiB. */
  readMaxBytes?: number;
  /** TLS for https:// URLs: the server's CA and, for client-certificate authentication, cert + key (PEM). */
  tls?: { ca: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** Headers sent with every call (credentials: authorization, impersonate-user, …). */
  headers?: Record<string, string>;
  /** Larger request messages fail with RESOURCE_EXHAUSTED before anything is sent. Default 64 MiB. */
  writeMaxBytes?: number;
  /**
   * A connection not established (TCP + TLS + HTTP/2 settings) within this long is given up: its
   * calls fail UNAVAILABLE with the cause code "ETIMEDOUT" (never sent), rather than wait out
   * their deadline on a server that does not answer. Default: no limit.
   */
  connectTimeoutMs?: number;
}

/** A call failed before any byte of it left this machine: safe to send to another server. */
export function neverSent(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } })?.cause;
  return err instanceof ConnectError && err.code === Code.Unavailable && (cause?.code === "ECONNREFUSED" || cause?.code === "ETIMEDOUT" || cause?.code === "EHOSTUNREACH" || cause?.code === "ENETUNREACH");
}

export interface GrpcTransport extends Transport {
  /** Closes the connection; calls in flight fail with UNAVAILABLE, later calls open a new one. */
  close(): void;
  /**
   * New TLS material (a renewed client certificate): later calls open a new connection with it;
   * calls in flight (watches) finish on the old one, which the server authenticated when it opened.
   */
  updateTls(tls: { ca: string | Buffer; cert?: string | Buffer; key?: string | Buffer }): void;
}

const STREAM_QUEUE_HIGH = 256;
const CONNECTION_WINDOW_BYTES = 8 * 1024 * 1024;

export function createGrpcTransport(opts: GrpcTransportOptions): GrpcTransport {
  const url = new URL(opts.baseUrl);
  const authority = `${url.protocol}//${url.host}`;
  const basePath = url.pathname.replace(/\/$/, "");
  const pingIntervalMs = opts.pingIntervalMs ?? 10_000;
  const pingTimeoutMs = opts.pingTimeoutMs ?? 10_000;
  const idleMs = opts.idleConnectionTimeoutMs ?? 60_000;
  const readMaxBytes = opts.readMaxBytes ?? 64 * 1024 * 1024;
  const writeMaxBytes = opts.writeMaxBytes ?? 64 * 1024 * 1024;
  if (url.protocol === "https:" && !opts.tls) throw new TypeError(`${authority}: an https URL needs tls options (at least the server's CA)`);
  const connectOptions: http2.SecureClientSessionOptions = {
    settings: { enablePush: false },
    // maxSessionMemory (MB): what the session may buffer before nghttp2 refuses new streams
    // (ENHANCE_YOUR_CALM); room for a few requests of writeMaxBytes that a peer is slow to take.
    maxSessionMemory: Math.max(10, Math.ceil((4 * writeMaxBytes) / 2 ** 20)),
  };
  if (url.protocol === "https:" && opts.tls) Object.assign(connectOptions, { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: ["h2"] });
  const extraHeaders = Object.entries(opts.headers ?? {});

  let session: ClientHttp2Session | undefined;
  let active = 0;
  let pinger: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let idleTimerOf: ClientHttp2Session | undefined;

  function connect(): ClientHttp2Session {
    const s = http2.connect(authority, connectOptions);
    s.on("error", () => {}); // failures reach the calls through their streams
    if (opts.connectTimeoutMs !== undefined) {
      const dial = setTimeout(() => {
        if (s.connecting) s.destroy(Object.assign(new Error(`no connection to ${authority} within ${opts.connectTimeoutMs} ms`), { code: "ETIMEDOUT" }));
      }, opts.connectTimeoutMs);
      dial.unref();
      s.once("connect", () => clearTimeout(dial));
      s.once("close", () => clearTimeout(dial));
    }
    const forget = () => {
      if (session === s) {
        session = undefined;
        clearInterval(pinger);
        stopIdleTimer();
      }
    };
    // The connection's receive window (all streams together): nghttp2's 64 KiB default would make
    // the server wait for a WINDOW_UPDATE every few events when several watches share the
    // connection. Each stream keeps its own 64 KiB window, which is what holds a server back when
    // one watch's reader falls behind (pause()), so back-pressure per watch is unchanged.
    s.once("connect", () => {
      if (!s.destroyed) s.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    });
    s.once("goaway", forget); // calls in flight finish; new ones open a new connection
    s.once("close", forget);
    s.unref();
    clearInterval(pinger);
    pinger = setInterval(() => {
      if (active === 0 || s.closed || s.destroyed) return;
      const timeout = setTimeout(() => s.destroy(new Error("keepalive ping not answered")), pingTimeoutMs);
      timeout.unref();
      try {
        s.ping((err) => {
          clearTimeout(timeout);
          if (err && !s.destroyed) s.destroy(err);
        });
      } catch {
        clearTimeout(timeout);
      }
    }, pingIntervalMs);
    pinger.unref();
    return s;
  }

  function open(headers: http2.OutgoingHttpHeaders): { s: ClientHttp2Session; st: ClientHttp2Stream } {
    for (let attempt = 0; ; attempt++) {
      if (!session || session.closed || session.destroyed) session = connect();
      const s = session;
      try {
        return { s, st: s.request(headers) };
      } catch (err) {
        // A connection that just went away (GOAWAY, closed): one more try on a new one.
        if (session === s) session = undefined;
        if (attempt > 0) throw new ConnectError(`cannot reach ${authority}: ${(err as Error).message}`, Code.Unavailable);
      }
    }
  }

  /**
   * Takes a connection that misbehaved out of use at once: later calls open a new one, calls in
   * flight on it finish (or fail) on their own, and it is closed when they are done.
   */
  function retire(s: ClientHttp2Session): void {
    if (session === s) {
      session = undefined;
      clearInterval(pinger);
      stopIdleTimer();
    }
    if (!s.closed && !s.destroyed) s.close();
  }

  function stopIdleTimer(): void {
    clearTimeout(idleTimer);
    idleTimer = idleTimerOf = undefined;
  }

  function hold(s: ClientHttp2Session): void {
    if (active++ === 0) s.ref(); // an open call keeps the process alive, an idle connection does not
  }

  function release(s: ClientHttp2Session): void {
    if (--active > 0) return;
    if (!s.destroyed) s.unref();
    // One timer per connection, re-armed (refresh) each time it goes idle: a caller making one
    // call at a time would otherwise create and cancel a timer per call. A call started since
    // keeps it from closing the connection (active > 0); that call's release re-arms it.
    // The timer is for the connection in use (a call that ended on one already replaced, after a
    // GOAWAY, leaves the replacement idle too: `active` counts calls on both).
    const current = session;
    if (!current) return;
    if (idleTimer && idleTimerOf === current) return void idleTimer.refresh();
    clearTimeout(idleTimer);
    idleTimerOf = current;
    idleTimer = setTimeout(() => {
      if (active === 0 && session === current) {
        session = undefined;
        current.close();
      }
    }, idleMs);
    idleTimer.unref();
  }

  interface Sink {
    headers(h: IncomingHttpHeaders): void;
    /** An error (e.g. the message does not decode) fails the call. */
    message(payload: Uint8Array): ConnectError | void;
    end(err: ConnectError | undefined, trailers: IncomingHttpHeaders): void;
  }

  interface CallControl {
    pause(): void;
    resume(): void;
    cancel(): void;
  }
  const noControl: CallControl = { pause() {}, resume() {}, cancel() {} };

  /** Starts a call; returns pause/resume for flow control, cancel to give up on it. */
  function call(method: DescMethod, signal: AbortSignal | undefined, timeoutMs: number | undefined, header: ConstructorParameters<typeof Headers>[0], body: Buffer, sink: Sink, retried = false): CallControl {
    const startedAt = performance.now();
    let finished = false;
    const finish = (err: ConnectError | undefined, trailers: IncomingHttpHeaders = {}) => {
      if (finished) return;
      finished = true;
      sink.end(err, trailers);
    };
    if (signal?.aborted) {
      queueMicrotask(() => finish(abortError(signal)));
      return noControl;
    }
    const h: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": `${basePath}/${method.parent.typeName}/${method.name}`,
      "content-type": "application/grpc+proto",
      te: "trailers",
      "user-agent": "skiff-grpc",
    };
    for (const [k, v] of extraHeaders) h[k] = v;
    if (timeoutMs !== undefined) h["grpc-timeout"] = `${Math.min(99_999_999, Math.max(1, Math.ceil(timeoutMs)))}m`;
    if (header) new Headers(header).forEach((v, k) => (h[k] = v));
    let s: ClientHttp2Session, st: ClientHttp2Stream;
    try {
      ({ s, st } = open(h));
    } catch (err) {
      queueMicrotask(() => finish(ConnectError.from(err, Code.Unavailable)));
      return noControl;
    }
    hold(s);
    let deadline: NodeJS.Timeout | undefined;
    const cancel = (err: ConnectError) => {
      finish(err);
      // A request the peer never took in full sits in this connection's send buffers: new calls
      // go to a new connection rather than queue behind it.
      if (!st.closed && st.writableLength > 0) retire(s);
      if (!st.closed) st.close(http2.constants.NGHTTP2_CANCEL);
    };
    const onAbort = () => cancel(abortError(signal!));
    signal?.addEventListener("abort", onAbort);
    if (timeoutMs !== undefined) deadline = setTimeout(() => cancel(new ConnectError("the call's deadline passed", Code.DeadlineExceeded)), timeoutMs);

    let trailersOnly: IncomingHttpHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    let failure: ConnectError | undefined;
    // The bytes of an incomplete message. A message spread over many DATA frames (a large list)
    // is joined once, when complete: joining on every frame would copy it over and over.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let frameBytes = 0; // prefix + message of the incomplete message, once its prefix is in
    let responded = false;
    let again: CallControl | undefined;
    st.on("response", (rh) => {
      responded = true;
      const status = Number(rh[":status"]);
      if (status !== 200) {
        failure = new ConnectError(`HTTP ${status} from ${authority}`, httpStatusCode(status));
      } else if (!String(rh["content-type"] ?? "").startsWith("application/grpc")) {
        failure = new ConnectError(`unexpected content type "${rh["content-type"]}" from ${authority}`, Code.Unknown);
      } else if (rh["grpc-status"] !== undefined) {
        trailersOnly = rh;
      } else {
        sink.headers(rh);
      }
    });
    st.on("data", (chunk: Buffer) => {
      if (finished || failure) return;
      let buf = chunk;
      if (pendingBytes > 0) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes < Math.max(5, frameBytes)) return;
        buf = Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        frameBytes = 0;
      }
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (len > readMaxBytes) {
          failure = new ConnectError(`response message of ${len} bytes is larger than ${readMaxBytes}`, Code.ResourceExhausted);
          st.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        if (buf.length < 5 + len) {
          frameBytes = 5 + len;
          break;
        }
        if (buf[0] & 1) {
          failure = new ConnectError("protocol error: compressed response message that was not asked for", Code.Internal);
          st.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        const bad = sink.message(buf.subarray(5, 5 + len));
        if (bad) {
          failure = bad;
          st.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        buf = buf.subarray(5 + len);
      }
      if (buf.length > 0) {
        pending.push(buf);
        pendingBytes = buf.length;
      }
    });
    st.on("trailers", (t) => {
      trailers = t;
    });
    st.on("error", (err) => {
      // A connection that failed cancels its pending streams; the reason is the cause.
      const cause = (err as Error & { cause?: unknown }).cause;
      // Keep the cause: TLS failures carry a code (UNABLE_TO_VERIFY_LEAF_SIGNATURE, …) callers explain.
      failure ??= new ConnectError(cause instanceof Error ? cause.message : err.message, Code.Unavailable, undefined, undefined, cause ?? err);
    });
    st.once("close", () => {
      clearTimeout(deadline);
      signal?.removeEventListener("abort", onAbort);
      release(s);
      // Refused: a GOAWAY crossed the call, so the server never saw it. Like grpc-js, send it
      // again once, on a new connection, rather than fail a call that is safe to repeat.
      if (!finished && !retried && !responded && st.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
        finished = true;
        const left = timeoutMs === undefined ? undefined : Math.max(1, timeoutMs - (performance.now() - startedAt));
        again = call(method, signal, left, header, body, sink, true);
        return;
      }
      const t = trailersOnly ?? trailers;
      // nghttp2 refusing streams (session memory) or a session-level failure: this connection
      // is no good for later calls.
      if (st.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM || st.rstCode === http2.constants.NGHTTP2_INTERNAL_ERROR) retire(s);
      if (failure) return finish(failure, t);
      if (t) return finish(statusError(t), t);
      if (st.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) {
        return finish(new ConnectError(`${authority} refused the call (try again)`, Code.Unavailable));
      }
      // A connection that went away takes its streams with it (reset as CANCEL, though nobody
      // cancelled): the server is unreachable, not the call cancelled.
      if (s.destroyed || s.closed) return finish(new ConnectError(`lost the connection to ${authority}`, Code.Unavailable));
      if (st.rstCode !== undefined && st.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        return finish(new ConnectError(`the call was reset (HTTP/2 code ${st.rstCode})`, st.rstCode === http2.constants.NGHTTP2_CANCEL ? Code.Canceled : Code.Unavailable));
      }
      if (pendingBytes > 0) return finish(new ConnectError("protocol error: the response ended inside a message", Code.Internal));
      finish(new ConnectError("protocol error: the response ended without a gRPC status", Code.Unavailable));
    });
    st.end(body);
    return {
      pause: () => (again ? again.pause() : st.pause()),
      resume: () => (again ? again.resume() : st.resume()),
      cancel: () => (again ? again.cancel() : cancel(new ConnectError("the call was cancelled", Code.Canceled))),
    };
  }

  function checkRequestSize(body: Buffer): void {
    if (body.length - 5 > writeMaxBytes) {
      throw new ConnectError(`request message of ${body.length - 5} bytes is larger than ${writeMaxBytes}`, Code.ResourceExhausted);
    }
  }

  const transport: GrpcTransport = {
    // Not async: one promise per call rather than two (an encoding or size failure rejects it).
    unary(method, signal, timeoutMs, header, input) {
      let body: Buffer;
      try {
        body = frame(encodeMessage(method.input, isMessage(input, method.input) ? input : create(method.input, input)));
        checkRequestSize(body);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise((resolve, reject) => {
        const responseHeader = new DeferredHeaders();
        let message: unknown;
        call(method, signal, timeoutMs, header, body, {
          headers: (h) => responseHeader.defer(h),
          message(payload) {
            if (message !== undefined) return new ConnectError("protocol error: more than one response message for a unary call", Code.Unimplemented);
            try {
              message = decodeMessage(method.output, payload);
            } catch (err) {
              return new ConnectError(`cannot decode the response message: ${(err as Error).message}`, Code.Internal);
            }
          },
          end(err, t) {
            if (err) return reject(err);
            if (message === undefined) return reject(new ConnectError("protocol error: no response message", Code.Unimplemented));
            resolve({ stream: false, service: method.parent, method, header: responseHeader, message: message as any, trailer: new DeferredHeaders().defer(t) });
          },
        });
      });
    },

    async stream(method, signal, timeoutMs, header, input) {
      if (method.methodKind !== "server_streaming") {
        throw new ConnectError(`${method.methodKind} calls are not supported by this transport`, Code.Unimplemented);
      }
      let first: unknown;
      for await (const m of input) {
        first = m;
        break;
      }
      const body = frame(encodeMessage(method.input, isMessage(first, method.input) ? first : create(method.input, first as any)));
      checkRequestSize(body);
      const responseHeader = new DeferredHeaders();
      const trailer = new DeferredHeaders();
      const queue: unknown[] = [];
      let ended = false;
      let error: ConnectError | undefined;
      let wake: (() => void) | undefined;
      let paused = false;
      const ctl = call(method, signal, timeoutMs, header, body, {
        headers: (h) => responseHeader.defer(h),
        message(payload) {
          try {
            queue.push(decodeMessage(method.output, payload));
          } catch (err) {
            // The stream ends at this message, after the good ones before it.
            return new ConnectError(`cannot decode a response message: ${(err as Error).message}`, Code.Internal);
          }
          if (queue.length >= STREAM_QUEUE_HIGH && !paused) {
            paused = true;
            ctl.pause();
          }
          wake?.();
        },
        end(err, t) {
          trailer.defer(t);
          error ??= err;
          ended = true;
          wake?.();
        },
      });
      async function* messages() {
        try {
          for (;;) {
            if (queue.length > 0) {
              const m = queue.shift();
              if (paused && queue.length < STREAM_QUEUE_HIGH / 2) {
                paused = false;
                ctl.resume();
              }
              yield m as any;
              continue;
            }
            if (ended) {
              if (error) throw error;
              return;
            }
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
          }
        } finally {
          // The caller stopped reading early: cancel the call on the server.
          if (!ended) ctl.cancel();
        }
      }
      return { stream: true, service: method.parent, method, header: responseHeader, message: messages(), trailer };
    },

    close() {
      const s = session;
      session = undefined;
      s?.destroy();
    },

    updateTls(tls) {
      if (url.protocol !== "https:") throw new TypeError(`${authority}: TLS material for a plaintext URL`);
      Object.assign(connectOptions, { ca: tls.ca, cert: tls.cert, key: tls.key });
      if (session) retire(session);
    },
  };
  return transport;
}
