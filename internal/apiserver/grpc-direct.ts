// A direct path for plain gRPC calls to our own services: the same handler functions connect
// runs, straight on the HTTP/2 stream. Every Skiff component and most gRPC clients speak plain,
// uncompressed gRPC; for them this skips the HTTP/2 compatibility layer and connect's per-call
// machinery (Headers objects, linked AbortControllers whose abort builds a DOMException, async
// iterable pipelines), which cost more CPU than our handlers themselves (`npm run bench -- api`,
// `--cpu-prof`). Watch responses are encoded once per event and shared by every watcher that gets
// the same event. Anything else — the Connect protocol, gRPC-Web, JSON codecs, compressed
// messages, unknown paths — is left to connect, which serves the same handlers.
import { create, isMessage, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { decodeMessage, encodeMessage as encodeProto } from "../api/codec/index.ts";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import type { ServerHttp2Stream, IncomingHttpHeaders } from "node:http2";
import { malformedRequest } from "./wire-errors.ts";

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
  /**
   * Per-call context values, as connect's contextValues option makes them: the request
   * pipeline's start of a call (who is calling) and who a watch counts against.
   */
  contextValues(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): ContextValues;
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
    // The response's pieces (stored bytes, headers, the version) are copied once, into the frame.
    const parts = encodeResponse(output, msg);
    let len = 0;
    for (const p of parts) len += partSize(p);
    // A cached frame lives as long as the watch cache holds its event: never a slice of Node's
    // shared 8 KiB pool, which one small frame would keep alive whole.
    const frame = cache ? Buffer.allocUnsafeSlow(5 + len) : Buffer.allocUnsafe(5 + len);
    frame[0] = 0;
    frame.writeUInt32BE(len, 1);
    let at = 5;
    for (const p of parts) at = writePart(frame, at, p);
    if (cache && typeof msg === "object" && msg !== null) frames.set(msg, frame);
    return frame;
  }

  function encodeResponse(output: DescMessage, msg: unknown): Part[] {
    if (isMessage(msg, output) || !opts.storedBytes) return [encodeProto(output, isMessage(msg, output) ? msg : create(output, msg as any))];
    const init = msg as Record<string, unknown>;
    const parts: Part[] = [];
    let reused = false;
    let rest: Record<string, unknown> | undefined;
    for (const field of output.fields) {
      const v = init[field.localName];
      if (v === undefined) continue;
      if (field.fieldKind === "message" && typeof v === "object" && v !== null) {
        if (reuse(parts, field.number, field.message, v)) {
          reused = true;
          continue;
        }
      } else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(v) && v.length > 0) {
        const mark = parts.length;
        if (v.every((x) => reuse(parts, field.number, field.message, x))) {
          reused = true;
          continue;
        }
        parts.length = mark;
      }
      (rest ??= {})[field.localName] = v;
    }
    if (!reused) return [encodeProto(output, create(output, init as any))];
    if (rest) parts.unshift(restBytes(output, rest));
    return parts;
  }

  /**
   * The fields beside the reused objects (a watch event's type): enum-only ones, a handful of
   * values per response type, are encoded once and kept.
   */
  const restCache = new WeakMap<DescMessage, Map<string, Uint8Array>>();
  function restBytes(output: DescMessage, rest: Record<string, unknown>): Uint8Array {
    let key = "";
    for (const [name, v] of Object.entries(rest)) {
      const field = output.fields.find((f) => f.localName === name);
      if (field?.fieldKind !== "enum" || typeof v !== "number") return encodeProto(output, create(output, rest as any));
      key += `${name}=${v};`;
    }
    let byValue = restCache.get(output);
    if (!byValue) restCache.set(output, (byValue = new Map()));
    let bytes = byValue.get(key);
    if (!bytes) byValue.set(key, (bytes = encodeProto(output, create(output, rest as any))));
    return bytes;
  }

  /** A length-delimited field holding an object's stored bytes, its resource version added; false when its bytes are not known. */
  function reuse(parts: Part[], fieldNumber: number, schema: DescMessage, obj: any): boolean {
    const stored = opts.storedBytes!(obj);
    if (!stored) return false;
    const rv: string = obj.metadata?.resourceVersion ?? "";
    const inner = rv === "" ? [stored] : withVersion(schema, stored, rv);
    parts.push(...lengthDelimited(fieldNumber, inner));
    return true;
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
    const values = opts.contextValues(stream, headers);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    stream.on("data", (c: Buffer) => {
      if (refused) return;
      size += c.length;
      // The length prefix tells at once: no need to take in megabytes before refusing them.
      const declared = chunks.length === 0 && c.length >= 5 ? c.readUInt32BE(1) : 0;
      if (size > opts.readMaxBytes + 5 || declared > opts.readMaxBytes) {
        refused = true;
        fail(stream, new ConnectError(`request message larger than ${opts.readMaxBytes} bytes`, Code.ResourceExhausted));
        // Discard the rest as it comes, so the client is not left blocked on flow control.
        chunks.length = 0;
        stream.resume();
        // The answer is out: RST_STREAM(NO_ERROR) tells the client to stop uploading the rest
        // (HTTP/2 §8.1). On the next turn: a close() in the same turn as respond() never goes out.
        setImmediate(() => stream.destroyed || stream.close());
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
    // The call ends at its grpc-timeout even when storage is slower; the handler sees its signal abort.
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
      report(err);
      finish(m, start, err);
      fail(stream, err);
      return;
    } finally {
      clearTimeout(deadline);
    }
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
        // Deadline or shutdown: stop here, not after whatever the handler still has (a long initial state).
        if (stream.closed || stream.destroyed || ac.signal.aborted) break;
        if (!started) {
          started = true;
          stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
          done(undefined);
        }
        if (!stream.write(frameOf(m.output, msg, true))) await drained(stream, ac.signal);
      }
      // A handler that ends quietly on an abort still ends the call with the abort's status.
      if (ac.signal.reason === DEADLINE || ac.signal.reason === SHUTDOWN) throw ac.signal.reason;
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

/**
 * A piece of an encoded message: bytes, a varint (a tag or a length), or a string's UTF-8 bytes.
 * Responses are assembled from pieces and copied once into their frame.
 */
type Part = Uint8Array | number | string;

function partSize(p: Part): number {
  return typeof p === "number" ? varintSize(p) : typeof p === "string" ? Buffer.byteLength(p, "utf8") : p.length;
}

function writePart(out: Buffer, at: number, p: Part): number {
  if (typeof p === "number") return writeVarint(out, at, p);
  if (typeof p === "string") return at + out.write(p, at, "utf8");
  out.set(p, at);
  return at + p.length;
}

/** A length-delimited field: its tag, its length, then the parts. */
function lengthDelimited(fieldNumber: number, parts: Part[]): Part[] {
  let len = 0;
  for (const p of parts) len += partSize(p);
  return [(fieldNumber << 3) | 2, len, ...parts];
}

// An object's stored bytes with metadata.resourceVersion written inside its one metadata field,
// built by hand (this runs for every object in every response). Not as a second metadata field
// after the object: the protobuf spec merges repeated message fields, but protobufjs (what
// @grpc/grpc-js clients decode with) keeps only the last one, and lost every other metadata field.
const versionFields = new WeakMap<DescMessage, [number, number] | null>();
function withVersion(schema: DescMessage, stored: Uint8Array, rv: string): Part[] {
  let nums = versionFields.get(schema);
  if (nums === undefined) {
    const meta = schema.fields.find((f) => f.localName === "metadata");
    const rvField = meta?.fieldKind === "message" ? meta.message.fields.find((f) => f.localName === "resourceVersion") : undefined;
    nums = meta && rvField ? [meta.number, rvField.number] : null;
    versionFields.set(schema, nums);
  }
  const found = nums ? findField(stored, nums[0]) : null;
  if (!nums || found === null) return [stored, encodeProto(schema, create(schema, { metadata: { resourceVersion: rv } } as any))];
  // No metadata stored: one holding only the version goes first.
  const [tagAt, start, end] = found ?? [0, 0, 0];
  const meta = lengthDelimited(nums[0], [stored.subarray(start, end), ...lengthDelimited(nums[1], [rv])]);
  return [stored.subarray(0, tagAt), ...meta, stored.subarray(found ? end : 0)];
}

/**
 * Where a top-level length-delimited field is in a message's bytes: [tag offset, value start,
 * value end]; undefined when absent, null when the bytes hold something this does not walk.
 */
function findField(bytes: Uint8Array, fieldNumber: number): [number, number, number] | undefined | null {
  let at = 0;
  const readVarint = () => {
    let n = 0;
    for (let shift = 0; at < bytes.length; shift += 7) {
      const b = bytes[at++];
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
    }
    return -1;
  };
  while (at < bytes.length) {
    const tagAt = at;
    const tag = readVarint();
    const wire = tag % 8;
    if (wire === 0) readVarint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = readVarint();
      if (len < 0) return null;
      if (Math.floor(tag / 8) === fieldNumber) return [tagAt, at, at + len];
      at += len;
    } else return null;
  }
  return at === bytes.length ? undefined : null;
}

// The codes are connect's for the same bytes, so that a request fails alike on every protocol.
function decodeRequest(input: DescMessage, body: Buffer): unknown {
  // The client sent something that is not one request message: its mistake, INVALID_ARGUMENT
  // (the same words and code as connect's path, see wire-errors.ts).
  if (body.length === 0) throw malformedRequest("missing request message");
  if (body.length < 5 || body.length < 5 + body.readUInt32BE(1)) throw malformedRequest("the request ended inside its message (truncated frame)");
  if (body[0] & 1) throw malformedRequest("compressed message without grpc-encoding");
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) throw malformedRequest("expected exactly one request message");
  try {
    return decodeMessage(input, body.subarray(5));
  } catch {
    throw malformedRequest("invalid protobuf");
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

function drained(stream: ServerHttp2Stream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
    signal.addEventListener("abort", done);
  });
}

// Abort reasons given explicitly: an abort() without one builds a DOMException with a stack trace.
const CANCELED = new ConnectError("the client cancelled the call", Code.Canceled);
const SHUTDOWN = new ConnectError("server shutting down: call again (a watch: resume from the last resource version)", Code.Unavailable);
const DEADLINE = new ConnectError("the call's deadline (grpc-timeout) passed", Code.DeadlineExceeded);
const NEVER = new AbortController().signal;

function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n >>>= 7;
    size++;
  }
  return size;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n > 0x7f) {
    out[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[at++] = n;
  return at;
}
