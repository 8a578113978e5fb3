// The gRPC-over-HTTP/2 wire details of grpc-transport.ts: message framing, the status a response's
// trailers (or a bare HTTP status) carry, and response headers copied only when read.
import { Code, ConnectError } from "@connectrpc/connect";
import type { IncomingHttpHeaders } from "node:http2";
import { inspect } from "node:util";

export function frame(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = 0;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/**
 * Response headers and trailers, copied into the Headers only when someone reads them: Headers
 * validates every name and value it is given, and most callers never look (connect hands them
 * only to onHeader / onTrailer), so copying them eagerly cost every call CPU for nothing.
 */
const HeadersBase = Headers as unknown as new () => object;
const base = Headers.prototype;
export class DeferredHeaders extends HeadersBase implements Headers {
  #pending: IncomingHttpHeaders[] = [];
  defer(from: IncomingHttpHeaders): this {
    this.#pending.push(from);
    return this;
  }
  #fill(): void {
    if (this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    for (const h of pending) copyHeaders(h, this as Headers);
  }
  append(name: string, value: string): void {
    this.#fill();
    base.append.call(this, name, value);
  }
  delete(name: string): void {
    this.#fill();
    base.delete.call(this, name);
  }
  get(name: string): string | null {
    this.#fill();
    return base.get.call(this, name);
  }
  getSetCookie(): string[] {
    this.#fill();
    return base.getSetCookie.call(this);
  }
  has(name: string): boolean {
    this.#fill();
    return base.has.call(this, name);
  }
  set(name: string, value: string): void {
    this.#fill();
    base.set.call(this, name, value);
  }
  forEach(fn: (value: string, key: string, parent: Headers) => void, thisArg?: unknown): void {
    this.#fill();
    base.forEach.call(this, fn, thisArg);
  }
  entries(): ReturnType<Headers["entries"]> {
    this.#fill();
    return base.entries.call(this);
  }
  keys(): ReturnType<Headers["keys"]> {
    this.#fill();
    return base.keys.call(this);
  }
  values(): ReturnType<Headers["values"]> {
    this.#fill();
    return base.values.call(this);
  }
  [Symbol.iterator](): ReturnType<Headers[typeof Symbol.iterator]> {
    this.#fill();
    return base[Symbol.iterator].call(this);
  }
  /** What console.log / util.inspect print. */
  [inspect.custom](...args: unknown[]): unknown {
    this.#fill();
    return (base as unknown as Record<symbol, (...a: unknown[]) => unknown>)[inspect.custom].apply(this, args);
  }
}

function copyHeaders(from: IncomingHttpHeaders, to: Headers): Headers {
  for (const [k, v] of Object.entries(from)) {
    if (k.startsWith(":") || v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) to.append(k, x);
    else to.set(k, String(v));
  }
  return to;
}

/** The call's gRPC status as an error, or undefined for OK. */
export function statusError(t: IncomingHttpHeaders): ConnectError | undefined {
  const raw = t["grpc-status"];
  if (raw === undefined) return new ConnectError("protocol error: missing grpc-status", Code.Unknown);
  const code = Number(raw);
  if (code === 0) return undefined;
  const metadata = new Headers();
  copyHeaders(t, metadata);
  metadata.delete("grpc-status");
  metadata.delete("grpc-message");
  const valid = Number.isInteger(code) && code > 0 && code <= 16;
  return new ConnectError(decodeMessage(String(t["grpc-message"] ?? "")), valid ? (code as Code) : Code.Unknown, metadata);
}

function decodeMessage(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** gRPC's mapping of HTTP statuses seen without a gRPC status. */
export function httpStatusCode(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

export function abortError(signal: AbortSignal): ConnectError {
  return signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, signal.reason);
}
