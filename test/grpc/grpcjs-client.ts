// An independent gRPC client of the apiserver: @grpc/grpc-js with the API's own .proto files
// loaded by @grpc/proto-loader (proto/ and vendor/proto), and a raw HTTP/2 caller for what no
// well-behaved client sends (truncated or wrongly flagged frames, a deadline without a client timer).
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { loadedTestPki } from "../../internal/pki/testing.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

const definition = protoLoader.loadSync(["skiff/v1alpha1/config_map_service.proto"], {
  includeDirs: [root("proto"), root("vendor/proto")],
  longs: String,
  enums: String,
  defaults: true,
});
const api = grpc.loadPackageDefinition(definition) as any;

/** ConfigMapService as grpc-js (and nice-grpc, which takes grpc-js definitions) see it. */
export const configMapServiceDefinition: grpc.ServiceDefinition = api.skiff.v1alpha1.ConfigMapService.service;

/** grpc-js channel credentials of the test PKI's admin (client certificate, the cluster CA as trust anchor). */
export function adminGrpcCredentials(): grpc.ChannelCredentials {
  const pki = loadedTestPki();
  return grpc.credentials.createSsl(Buffer.from(pki.ca.cert), Buffer.from(pki.admin.key), Buffer.from(pki.admin.cert));
}

/** A grpc-js client of ConfigMapService, as the admin unless other credentials are given. */
export function configMapClient(target: string, options: grpc.ClientOptions = {}, credentials = adminGrpcCredentials()): any {
  return new api.skiff.v1alpha1.ConfigMapService(target, credentials, options);
}

/** A unary call as a promise: the response, or the grpc-js status error. */
export function unary<T = any>(client: any, method: string, req: object, options: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => client[method](req, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))));
}

export interface RawStatus {
  /** grpc-status as a number, from the headers (trailers-only) or the trailers. */
  code: number | undefined;
  message: string | undefined;
  /** The HTTP/2 RST_STREAM code when the stream was reset instead. */
  rstCode: number;
}

/** An HTTP/2 connection to url: over TLS as the test PKI's admin for https URLs. */
function connectAs(url: string): http2.ClientHttp2Session {
  return http2.connect(url, url.startsWith("https:") ? loadedTestPki().adminNodeOptions : {});
}

/** One request on a fresh HTTP/2 connection, with the given headers and body bytes; the gRPC status it ends with. */
export function rawCall(url: string, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders = {}): Promise<RawStatus> {
  const session = connectAs(url);
  session.on("error", () => {});
  return new Promise<RawStatus>((resolve) => {
    const st = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let status: Pick<RawStatus, "code" | "message"> = { code: undefined, message: undefined };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = { code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
    };
    const received: Buffer[] = [];
    st.on("response", take);
    st.on("trailers", take);
    st.on("data", (c: Buffer) => received.push(c));
    st.on("error", () => {});
    st.on("close", () => {
      if (status.code === undefined) take(grpcWebTrailers(Buffer.concat(received)));
      resolve({ ...status, rstCode: st.rstCode ?? 0 });
    });
    st.end(body);
  }).finally(() => session.close());
}

/**
 * A request of `total` bytes (a length prefix announcing total - 5, then zeros) uploaded in 64 KiB
 * writes that respect flow control, as real clients do; how it ended and how much went out.
 */
export function rawUpload(url: string, path: string, total: number): Promise<RawStatus & { sent: number }> {
  const session = connectAs(url);
  session.on("error", () => {});
  return new Promise<RawStatus & { sent: number }>((resolve) => {
    const st = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: Pick<RawStatus, "code" | "message"> = { code: undefined, message: undefined };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = { code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
    };
    st.on("response", take);
    st.on("trailers", take);
    st.on("error", () => {});
    st.resume();
    let sent = 0;
    st.on("close", () => resolve({ ...status, rstCode: st.rstCode ?? 0, sent }));
    const chunk = Buffer.alloc(64 * 1024);
    const pump = (): void => {
      while (sent < total && !st.closed && !st.destroyed) {
        const part = sent === 0 ? grpcFrame(chunk.subarray(5), 0, total - 5) : chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += part.length;
        if (!st.write(part)) return void st.once("drain", pump);
      }
      if (!st.closed && !st.destroyed) st.end();
    };
    pump();
  }).finally(() => session.close());
}

/**
 * A server-streaming call read slowly: one DATA chunk every `msPerChunk` (the HTTP/2 window then
 * holds the server back). How it ended and how many messages came before.
 */
export function rawSlowRead(url: string, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders, msPerChunk: number): Promise<RawStatus & { messages: number }> {
  const session = connectAs(url);
  session.on("error", () => {});
  return new Promise<RawStatus & { messages: number }>((resolve) => {
    const st = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    let status: Pick<RawStatus, "code" | "message"> = { code: undefined, message: undefined };
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = { code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
    };
    st.on("response", take);
    st.on("trailers", take);
    st.on("error", () => {});
    let pending = Buffer.alloc(0);
    let messages = 0;
    st.on("data", (c: Buffer) => {
      pending = Buffer.concat([pending, c]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        messages++;
        pending = pending.subarray(5 + pending.readUInt32BE(1));
      }
      st.pause();
      setTimeout(() => st.resume(), msPerChunk);
    });
    st.on("close", () => resolve({ ...status, rstCode: st.rstCode ?? 0, messages }));
    st.end(body);
  }).finally(() => session.close());
}

/** A gRPC length-prefixed message: flags, 4-byte length, bytes. */
export function grpcFrame(message: Uint8Array, flags = 0, declaredLength = message.length): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(declaredLength, 1);
  out.set(message, 5);
  return out;
}

/** gRPC-Web sends its trailers as the body's last frame (flag 0x80) of "name: value" lines. */
function grpcWebTrailers(body: Buffer): http2.IncomingHttpHeaders {
  const out: http2.IncomingHttpHeaders = {};
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    if (body[at] & 0x80) {
      for (const line of body.subarray(at + 5, at + 5 + len).toString("utf8").split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
    }
    at += 5 + len;
  }
  return out;
}
