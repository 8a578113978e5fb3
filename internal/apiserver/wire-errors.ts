// One table for the errors the protocol layer raises before a handler runs (a request that is
// not one valid message, or is too large), so every protocol answers them alike. The direct gRPC
// path raises them in these words itself; for connect's paths (Connect, gRPC-Web, compressed or
// JSON gRPC) rewriteConnectErrors rewrites connect's own (e.g. "parse binary: …" as INTERNAL)
// in the response, wherever that protocol carries its status.
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

export function malformedRequest(what: string): ConnectError {
  return new ConnectError(`malformed request: ${what}`, Code.InvalidArgument);
}

/** The code and message a protocol-level failure is answered with; undefined = as it is. */
export function mapProtocolError(code: Code, message: string): { code: Code; message: string } | undefined {
  if (message.startsWith("parse binary:")) return { code: Code.InvalidArgument, message: malformedRequest("invalid protobuf").rawMessage };
  if (message.startsWith("protocol error: incomplete envelope")) {
    return { code: Code.InvalidArgument, message: malformedRequest("the request ended inside its message (truncated frame)").rawMessage };
  }
  // Not one request message, or a compressed one without grpc-encoding: the direct path's words.
  if (message.startsWith("protocol error: missing input message")) return { code: Code.InvalidArgument, message: malformedRequest("missing request message").rawMessage };
  if (message.startsWith("protocol error: received extra input message")) {
    return { code: Code.InvalidArgument, message: malformedRequest("expected exactly one request message").rawMessage };
  }
  if (message.startsWith("received compressed envelope, but do not know how to decompress")) {
    return { code: Code.InvalidArgument, message: malformedRequest("compressed message without grpc-encoding").rawMessage };
  }
  const size = /^message size (?:\d+ )?is larger than configured readMaxBytes (\d+)/.exec(message);
  if (size) return { code: Code.ResourceExhausted, message: `request message larger than ${size[1]} bytes` };
  if (code === Code.InvalidArgument && message.startsWith("cannot decode message")) {
    // protobuf-es: `cannot decode message X from JSON: key "lables" is unknown`: keep what names the field.
    return { code, message: malformedRequest(message.replace(/^cannot decode message \S+ from JSON: /, "invalid JSON: ")).rawMessage };
  }
  if (code === Code.InvalidArgument && /^(Unexpected|Expected|JSON)/.test(message)) return { code, message: malformedRequest(`invalid JSON: ${message}`).rawMessage };
  return undefined;
}

/** Rewrites, in every handler of the router, connect's protocol errors per mapProtocolError. */
export function rewriteConnectErrors(router: ConnectRouter): void {
  const handlers = router.handlers as UniversalHandler[];
  for (let i = 0; i < handlers.length; i++) {
    const inner = handlers[i];
    handlers[i] = Object.assign(async (req: Parameters<UniversalHandler>[0]) => rewriteResponse(await inner(req)), inner);
  }
}

const SNAKE = (c: Code) => Code[c].replace(/[A-Z]/g, (x, i) => (i ? "_" : "") + x.toLowerCase());
const fromSnake = new Map(Object.values(Code).filter((v): v is Code => typeof v === "number").map((c) => [SNAKE(c), c]));

async function rewriteResponse(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const body = res.body;
  if (!body) return res;
  if (res.status !== 200) {
    // Connect unary: an error is the HTTP status and a small JSON body {code, message}.
    const chunks: Uint8Array[] = [];
    for await (const c of body) chunks.push(c);
    const fixed = rewriteJsonError(Buffer.concat(chunks));
    if (!fixed) return { ...res, body: once(Buffer.concat(chunks)) };
    const header = new Headers(res.header);
    header.delete("content-length"); // the body changed
    return { ...res, header, status: codeToHttpStatus(fixed.code), body: once(fixed.bytes) };
  }
  return {
    ...res,
    body: (async function* () {
      for await (const chunk of body) yield rewriteEnvelope(chunk);
      // gRPC: the status is in the trailers, final once the body has ended.
      if (res.trailer instanceof Headers) rewriteGrpcStatus(res.trailer);
    })(),
  };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function rewriteJsonError(bytes: Uint8Array, wrap = false): { code: Code; bytes: Uint8Array } | undefined {
  let json: any;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return undefined;
  }
  const err = wrap ? json?.error : json;
  const code = fromSnake.get(err?.code);
  if (code === undefined || typeof err.message !== "string") return undefined;
  const m = mapProtocolError(code, err.message);
  if (!m) return undefined;
  err.code = SNAKE(m.code);
  err.message = m.message;
  return { code: m.code, bytes: Buffer.from(JSON.stringify(json)) };
}

const TRAILER_FLAG = 0x80; // gRPC-Web trailers
const END_STREAM_FLAG = 0x02; // Connect streaming end

function rewriteEnvelope(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || !(chunk[0] & (TRAILER_FLAG | END_STREAM_FLAG))) return chunk;
  const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (buf.readUInt32BE(1) !== buf.length - 5) return chunk;
  let data: Uint8Array | undefined;
  if (chunk[0] & TRAILER_FLAG) {
    const h = new Headers();
    for (const line of buf.subarray(5).toString("utf8").split("\r\n")) {
      const at = line.indexOf(":");
      if (at > 0) h.append(line.slice(0, at).trim(), line.slice(at + 1).trim());
    }
    if (!rewriteGrpcStatus(h)) return chunk;
    let text = "";
    h.forEach((v, k) => (text += `${k}: ${v}\r\n`));
    data = Buffer.from(text);
  } else {
    data = rewriteJsonError(buf.subarray(5), true)?.bytes;
    if (!data) return chunk;
  }
  const out = Buffer.alloc(5 + data.length);
  out[0] = chunk[0];
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/** Rewrites grpc-status/grpc-message in place; true if it changed them. */
function rewriteGrpcStatus(h: Headers): boolean {
  const status = Number(h.get("grpc-status") ?? "0");
  if (!status) return false;
  const message = decodeURIComponent(h.get("grpc-message") ?? "");
  const m = mapProtocolError(status as Code, message);
  if (!m) return false;
  h.set("grpc-status", String(m.code));
  h.set("grpc-message", encodeURIComponent(m.message));
  return true;
}
