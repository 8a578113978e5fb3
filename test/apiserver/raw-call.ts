// Raw calls over HTTP/2 in any of the three protocols, for tests that send what no well-behaved
// client would (broken frames, invalid bytes) and read the status however the protocol carries it.
import { Code } from "@connectrpc/connect";
import http2 from "node:http2";
import { loadedTestPki } from "../../internal/pki/testing.ts";

export type Protocol = "gRPC" | "Connect" | "gRPC-Web";

export interface RawStatus {
  code: Code;
  message: string;
}

/** A gRPC / gRPC-Web / Connect-streaming message frame: flags, 4-byte length, payload. */
export function envelope(payload: Uint8Array, declaredLength = payload.length): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(declaredLength, 1);
  out.set(payload, 5);
  return out;
}

const snake = (c: Code) => Code[c].replace(/[A-Z]/g, (x, i) => (i ? "_" : "") + x.toLowerCase());
const codeOf = (s: string | undefined): Code => {
  const c = Object.values(Code).find((v) => typeof v === "number" && snake(v) === s);
  return (c as Code | undefined) ?? Code.Unknown;
};

/**
 * Sends `wire` (the exact request body) to `path` and returns the call's status. `streaming`:
 * Connect's streaming content type (enveloped), for server-streaming methods.
 */
export async function rawCall(url: string, protocol: Protocol, path: string, wire: Uint8Array, opts: { json?: boolean; streaming?: boolean } = {}): Promise<RawStatus> {
  const json = opts.json ?? false;
  const contentType = {
    gRPC: json ? "application/grpc+json" : "application/grpc",
    "gRPC-Web": json ? "application/grpc-web+json" : "application/grpc-web+proto",
    Connect: opts.streaming ? (json ? "application/connect+json" : "application/connect+proto") : json ? "application/json" : "application/proto",
  }[protocol];
  // https: as the test PKI's admin (these tests are about the bytes, not who sends them).
  const session = http2.connect(url, url.startsWith("https:") ? loadedTestPki().adminNodeOptions : {});
  session.on("error", () => {});
  try {
    return await new Promise<RawStatus>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => (headers = h));
      req.on("trailers", (t) => (trailers = t));
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("error", reject);
      // The answer may come before the server took the whole request (a refused one): done when
      // the response has ended, or the stream closed.
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        const body = Buffer.concat(chunks);
        const grpcStatus = trailers["grpc-status"] ?? headers["grpc-status"];
        if (grpcStatus !== undefined) {
          return resolve({ code: Number(grpcStatus), message: decodeURIComponent(String(trailers["grpc-message"] ?? headers["grpc-message"] ?? "")) });
        }
        const enveloped = /^application\/(grpc-web|connect\+)/.test(String(headers["content-type"]));
        for (const { flags, data } of enveloped ? envelopes(body) : []) {
          if (flags & 0x80) {
            // gRPC-Web trailers: "key: value" lines.
            const t = Object.fromEntries(data.toString().split("\r\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
            return resolve({ code: Number(t["grpc-status"]), message: decodeURIComponent(t["grpc-message"] ?? "") });
          }
          if (flags & 0x02) {
            const end = JSON.parse(data.toString());
            return resolve(end.error ? { code: codeOf(end.error.code), message: end.error.message ?? "" } : { code: 0 as Code, message: "" });
          }
        }
        if (protocol === "Connect" && Number(headers[":status"]) !== 200) {
          const err = JSON.parse(body.toString() || "{}");
          return resolve({ code: codeOf(err.code), message: err.message ?? "" });
        }
        resolve({ code: 0 as Code, message: "" });
      };
      req.on("end", finish);
      req.on("close", finish);
      req.end(wire);
    });
  } finally {
    session.destroy();
  }
}

function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const len = body.readUInt32BE(at + 1);
    out.push({ flags: body[at], data: body.subarray(at + 5, at + 5 + len) });
    at += 5 + len;
  }
  return out;
}
