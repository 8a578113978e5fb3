// A direct path for plain gRPC calls to our own services: the same handler functions connect
// runs, straight on the HTTP/2 stream. Every Skiff component and most gRPC clients speak plain,
// uncompressed gRPC; for them this skips the HTTP/2 compatibility layer and connect's per-call
// machinery (Headers objects, linked AbortControllers whose abort builds a DOMException, async
// iterable pipelines), which cost more CPU than our handlers themselves (`npm run bench -- api`,
// `--cpu-prof`). Watch responses are encoded once per event and shared by every watcher that gets
// the same event. Anything else — the Connect protocol, gRPC-Web, JSON codecs, compressed
// messages, unknown paths — is left to connect, which serves the same handlers.
import { create, isMessage, toBinary, fromBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { ServerHttp2Stream, IncomingHttpHeaders } from "node:http2";

/** What our handlers read from their context: the signal (watches end on it) and the values the request pipeline put there. */
export interface DirectContext {
  signal: AbortSignal;
  values: ContextValues;
}

type Handler = (req: any, ctx: DirectContext) => unknown;

interface Method {
  service: string;
  method: string;
  streaming: boolean;
  input: DescMessage;
  output: DescMessage;
  handler: Handler;
}

export interface DirectGrpcOptions {
  /** Requests larger than this are refused with RESOURCE_EXHAUSTED. */
  readMaxBytes: number;
  /** Aborted when the server shuts down: open streams end like connect's do. */
  shutdownSignal: AbortSignal;
  /** Called once per call: for unary calls at the end, for streams once the first message went out (or at the end). */
  onDone(service: string, method: string, code: Code | undefined, seconds: number): void;
  onInternalError?(err: unknown): void;
  /**
   * The protobuf bytes of an object without its resource version, when known and current: a
   * response field holding such an object is sent as those bytes plus its resource version.
   */
  storedBytes?(obj: object): Uint8Array | undefined;
  /** The request pipeline's start of a call (who is calling), as connect's contextValues do it. */
  begin(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): ContextValues;
}

export interface DirectGrpc {
  /** Registers a service's handlers (the object given to connect's router.service). */
  register(service: DescService, impl: Record<string, unknown>): void;
  /** Serves the stream if it is a call this path takes; false leaves it to connect. */
  serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean;
}

const CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };
const OK_TRAILERS = { "grpc-status": "0" };

export function createDirectGrpc(opts: DirectGrpcOptions): DirectGrpc {
  const methods = new Map<string, Method>();
  // Encoded response frames of streamed messages, by message object: a watch event's response
  // object is shared by every watcher that receives it (see service.ts), so it is encoded once.
  const frames = new WeakMap<object, Buffer>();

  function frameOf(output: DescMessage, msg: unknown, cache: boolean): Buffer {
    if (cache && typeof msg === "object" && msg !== null) {
      const hit = frames.get(msg);
      if (hit) return hit;
    }
    const bytes = encodeResponse(output, msg);
    const frame = Buffer.allocUnsafe(5 + bytes.length);
    frame[0] = 0;
    frame.writeUInt32BE(bytes.length, 1);
    frame.set(bytes, 5);
    if (cache && typeof msg === "object" && msg !== null) frames.set(msg, frame);
    return frame;
  }

  function encodeResponse(output: DescMessage, msg: unknown): Uint8Array {
    if (isMessage(msg, output) || !opts.storedBytes) return toBinary(output, isMessage(msg, output) ? msg : create(output, msg as any));
    const init = msg as Record<string, unknown>;
    const parts: Uint8Array[] = [];
    let rest: Record<string, unknown> | undefined;
    for (const field of output.fields) {
      const v = init[field.localName];
      if (v === undefined) continue;
      if (field.fieldKind === "message" && typeof v === "object" && v !== null) {
        const part = reuse(field.number, field.message, v);
        if (part) {
          parts.push(part);
          continue;
        }
      } else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(v) && v.length > 0) {
        const items = v.map((x) => reuse(field.number, field.message, x));
        if (items.every((x) => x !== undefined)) {
          parts.push(...(items as Uint8Array[]));
          continue;
        }
      }
      (rest ??= {})[field.localName] = v;
    }
    if (parts.length === 0) return toBinary(output, create(output, init as any));
    if (rest) parts.unshift(toBinary(output, create(output, rest as any)));
    return Buffer.concat(parts);
  }

  /** A length-delimited field holding an object's stored bytes followed by its resource version. */
  function reuse(fieldNumber: number, schema: DescMessage, obj: any): Uint8Array | undefined {
    const stored = opts.storedBytes!(obj);
    if (!stored) return undefined;
    const rv: string = obj.metadata?.resourceVersion ?? "";
    const suffix = rv === "" ? EMPTY : versionSuffix(schema, rv);
    const head = [...varint((fieldNumber << 3) | 2), ...varint(stored.length + suffix.length)];
    const out = Buffer.allocUnsafe(head.length + stored.length + suffix.length);
    out.set(head, 0);
    out.set(stored, head.length);
    out.set(suffix, head.length + stored.length);
    return out;
  }

  function register(service: DescService, impl: Record<string, unknown>): void {
    for (const m of service.methods) {
      const handler = impl[m.localName];
      if (typeof handler !== "function") continue;
      if (m.methodKind !== "unary" && m.methodKind !== "server_streaming") continue;
      methods.set(`/${service.typeName}/${m.name}`, {
        service: service.typeName,
        method: m.name,
        streaming: m.methodKind === "server_streaming",
        input: m.input,
        output: m.output,
        handler: handler as Handler,
      });
    }
  }

  function serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    if (headers[":method"] !== "POST") return false;
    if (!CONTENT_TYPES.has(String(headers["content-type"]))) return false;
    const enc = headers["grpc-encoding"];
    if (enc !== undefined && enc !== "identity") return false;
    const m = methods.get(String(headers[":path"]));
    if (!m) return false;
    const timeoutMs = parseTimeout(headers["grpc-timeout"]);
    const values = opts.begin(stream, headers);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    stream.on("data", (c: Buffer) => {
      if (refused) return;
      size += c.length;
      if (size > opts.readMaxBytes + 5) {
        refused = true;
        fail(stream, new ConnectError(`message larger than ${opts.readMaxBytes} bytes`, Code.ResourceExhausted));
        return;
      }
      chunks.push(c);
    });
    stream.once("end", () => {
      if (refused) return;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      const start = performance.now();
      let req: unknown;
      try {
        req = decodeRequest(m.input, body);
      } catch (err) {
        finish(m, start, err);
        fail(stream, err);
        return;
      }
      if (m.streaming) void runStream(m, stream, req, values, timeoutMs, start);
      else void runUnary(m, stream, req, values, timeoutMs, start);
    });
    stream.on("error", () => {}); // a reset by the client; its 'close' ends the call
    return true;
  }

  function finish(m: Method, start: number, err: unknown): void {
    opts.onDone(m.service, m.method, err === undefined ? undefined : ConnectError.from(err).code, (performance.now() - start) / 1000);
  }

  async function runUnary(m: Method, stream: ServerHttp2Stream, req: unknown, values: ContextValues, timeoutMs: number | undefined, start: number): Promise<void> {
    let frame: Buffer;
    // A deadline only when the client set one: most calls have none and pay nothing for it.
    let deadline: NodeJS.Timeout | undefined;
    let signal = NEVER;
    let expired: Promise<never> | undefined;
    if (timeoutMs !== undefined) {
      const ac = new AbortController();
      signal = ac.signal;
      expired = new Promise<never>((_, reject) => {
        deadline = setTimeout(() => {
          ac.abort(DEADLINE);
          reject(DEADLINE);
        }, timeoutMs);
      });
      expired.catch(() => {});
    }
    try {
      const result = m.handler(req, { signal, values });
      frame = frameOf(m.output, await (expired ? Promise.race([result, expired]) : result), false);
    } catch (err) {
      clearTimeout(deadline);
      report(err);
      finish(m, start, err);
      fail(stream, err);
      return;
    }
    clearTimeout(deadline);
    finish(m, start, undefined);
    if (stream.closed || stream.destroyed) return;
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(OK_TRAILERS));
    stream.end(frame);
  }

  async function runStream(m: Method, stream: ServerHttp2Stream, req: unknown, values: ContextValues, timeoutMs: number | undefined, start: number): Promise<void> {
    const ac = new AbortController();
    const cancel = () => ac.abort(CANCELED);
    const shutdown = () => ac.abort(SHUTDOWN);
    stream.once("close", cancel);
    opts.shutdownSignal.addEventListener("abort", shutdown);
    if (opts.shutdownSignal.aborted) shutdown();
    let deadline: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) deadline = setTimeout(() => ac.abort(DEADLINE), timeoutMs);
    let started = false;
    let reported = false;
    const done = (err: unknown) => {
      if (reported) return;
      reported = true;
      finish(m, start, err);
    };
    try {
      const it = m.handler(req, { signal: ac.signal, values }) as AsyncIterable<unknown>;
      for await (const msg of it) {
        if (stream.closed || stream.destroyed) break;
        if (!started) {
          started = true;
          stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
          done(undefined);
        }
        if (!stream.write(frameOf(m.output, msg, true))) await drained(stream);
      }
      if (ac.signal.reason === DEADLINE) throw DEADLINE;
      done(undefined);
      if (stream.closed || stream.destroyed) return;
      if (!started) stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(OK_TRAILERS));
      stream.end();
    } catch (e) {
      const err = ac.signal.reason === DEADLINE ? DEADLINE : e;
      report(err);
      done(err);
      if (stream.closed || stream.destroyed) return;
      if (!started) {
        fail(stream, err);
      } else {
        stream.once("wantTrailers", () => stream.sendTrailers(trailersOf(err)));
        stream.end();
      }
    } finally {
      clearTimeout(deadline);
      stream.off("close", cancel);
      opts.shutdownSignal.removeEventListener("abort", shutdown);
    }
  }

  function report(err: unknown): void {
    if (!(err instanceof ConnectError)) opts.onInternalError?.(err);
  }

  return { register, serve };
}

// The encoding of { metadata: { resourceVersion: rv } } for a kind: two nested length-delimited
// fields, built by hand (this runs for every object in every response).
const versionFields = new WeakMap<DescMessage, [number, number] | null>();
function versionSuffix(schema: DescMessage, rv: string): Uint8Array {
  let nums = versionFields.get(schema);
  if (nums === undefined) {
    const meta = schema.fields.find((f) => f.localName === "metadata");
    const rvField = meta?.fieldKind === "message" ? meta.message.fields.find((f) => f.localName === "resourceVersion") : undefined;
    nums = meta && rvField ? [meta.number, rvField.number] : null;
    versionFields.set(schema, nums);
  }
  if (!nums) return toBinary(schema, create(schema, { metadata: { resourceVersion: rv } } as any));
  const text = Buffer.from(rv, "utf8");
  const inner = [...varint((nums[1] << 3) | 2), ...varint(text.length), ...text];
  return Uint8Array.from([...varint((nums[0] << 3) | 2), ...varint(inner.length), ...inner]);
}

function decodeRequest(input: DescMessage, body: Buffer): unknown {
  if (body.length < 5) throw new ConnectError("protocol error: missing request message", Code.Internal);
  if (body[0] & 1) throw new ConnectError("protocol error: compressed message without grpc-encoding", Code.Internal);
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) throw new ConnectError("protocol error: expected exactly one request message", Code.Internal);
  try {
    return fromBinary(input, body.subarray(5));
  } catch (err) {
    throw new ConnectError(`cannot decode the request: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

/** A trailers-only response: the status in the headers, no body. */
function fail(stream: ServerHttp2Stream, err: unknown): void {
  if (stream.closed || stream.destroyed || stream.headersSent) return;
  stream.respond({ ...RESPONSE_HEADERS, ...trailersOf(err) }, { endStream: true });
}

function trailersOf(err: unknown): Record<string, string> {
  const e = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  const out: Record<string, string> = {};
  e.metadata.forEach((v, k) => {
    out[k] = v;
  });
  out["grpc-status"] = String(e.code);
  out["grpc-message"] = encodeMessage(e.rawMessage);
  return out;
}

/** gRPC's percent-encoding of grpc-message: printable ASCII except '%' stays as it is. */
function encodeMessage(s: string): string {
  return Array.from(Buffer.from(s, "utf8"), (b) =>
    b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : "%" + b.toString(16).toUpperCase().padStart(2, "0"),
  ).join("");
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** grpc-timeout: up to 8 digits and a unit (H M S m u n); absent or malformed = none. */
export function parseTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  return m ? Number(m[1]) * TIMEOUT_UNITS[m[2]] : undefined;
}

function drained(stream: ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

// Abort reasons given explicitly: an abort() without one builds a DOMException with a stack trace.
const CANCELED = new ConnectError("the client cancelled the call", Code.Canceled);
const SHUTDOWN = new ConnectError("server shutting down", Code.Canceled);
const DEADLINE = new ConnectError("the call's deadline (grpc-timeout) passed", Code.DeadlineExceeded);
const NEVER = new AbortController().signal;
const EMPTY = new Uint8Array(0);

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
