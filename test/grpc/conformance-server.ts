// An independent gRPC server for testing Skiff's client transport: @grpc/grpc-js serving
// conformance.proto (loaded with @grpc/proto-loader), plus the same service as protobuf-es
// descriptors for Skiff's side. It serves TLS with the test PKI's apiserver certificate (valid for
// loopback) unless given other `credentials`; `url` follows them (https:// or http://).
import { create, createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { testPki } from "../../internal/pki/testing.ts";
import { LOOPBACK } from "../harness/ports.ts";

const PROTO = fileURLToPath(new URL("./conformance.proto", import.meta.url));
const SERVICE = "skiff.conformance.v1.ConformanceService";

const packageDefinition = protoLoader.loadSync(PROTO, { longs: Number, defaults: true });

/** The service as protobuf-es sees it, built from the same file proto-loader compiled. */
export const ConformanceService: DescService = (() => {
  const files = (packageDefinition["skiff.conformance.v1.EchoRequest"] as protoLoader.MessageTypeDefinition<object, object>).fileDescriptorProtos;
  const set = create(FileDescriptorSetSchema, { file: files.map((b) => fromBinary(FileDescriptorProtoSchema, b)) });
  return createFileRegistry(set).getService(SERVICE)!;
})();

export interface ConformanceServer {
  /** What Skiff's transport takes as baseUrl. */
  url: string;
  port: number;
  /** Calls whose client went away (cancel, deadline, reset) before the server finished. */
  cancelled: number;
  /** Request metadata of the last call. */
  lastMetadata: grpc.Metadata | undefined;
  /** The deadline grpc-js read from the last call's grpc-timeout (Infinity: none). */
  lastDeadline: number | undefined;
  /** Count: messages handed to grpc-js so far, and whether a write is waiting for 'drain'. */
  stream: { written: number; waiting: boolean };
  /** Resolves when a Count call first has to wait for the client (flow control reached the server). */
  blocked: Promise<void>;
  /** Graceful: GOAWAY, calls in flight finish. */
  shutdown(): Promise<void>;
  /** Drops every connection at once. */
  kill(): void;
}

export interface ConformanceServerOptions {
  /** 0 = a free port. */
  port?: number;
  /** Default: TLS with the test PKI's apiserver certificate (no client certificate asked for). */
  credentials?: grpc.ServerCredentials;
  /** grpc-js server options (message sizes, keepalive). */
  options?: grpc.ServerOptions;
  /** A misbehaving server: Echo answers with this many messages (registered as a stream) and OK. */
  echoAnswers?: number;
}

// Bytes that decode as neither response: field 2 (bytes in both), 127 bytes announced, none sent.
const GARBAGE = Buffer.from([0x12, 0x7f]);
const garbage = Symbol("garbage");

export async function startConformanceServer(opts: ConformanceServerOptions = {}): Promise<ConformanceServer> {
  const pki = await testPki();
  const credentials = opts.credentials ?? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(pki.apiserver.cert), private_key: Buffer.from(pki.apiserver.key) }], false);
  const loaded = grpc.loadPackageDefinition(packageDefinition) as any;
  const definition: Record<string, grpc.MethodDefinition<any, any>> = { ...loaded.skiff.conformance.v1.ConformanceService.service };
  // Let a handler send undecodable bytes: responses marked `garbage` skip the real serializer.
  for (const name of Object.keys(definition)) {
    const m = definition[name];
    definition[name] = { ...m, responseSerialize: (v: any) => (v?.[garbage] ? GARBAGE : m.responseSerialize(v)) };
  }
  let unblock!: () => void;
  const state: ConformanceServer = {
    url: "",
    port: 0,
    cancelled: 0,
    lastMetadata: undefined,
    lastDeadline: undefined,
    stream: { written: 0, waiting: false },
    blocked: new Promise<void>((r) => (unblock = r)),
    shutdown: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
  };

  const server = new grpc.Server(opts.options);
  if (opts.echoAnswers !== undefined) {
    const answers = opts.echoAnswers;
    server.addService({ Echo: { ...definition.Echo, responseStream: true } }, {
      Echo(call: grpc.ServerWritableStream<any, any>) {
        for (let i = 1; i <= answers; i++) call.write({ text: `answer ${i}` });
        call.end();
      },
    });
  } else server.addService(definition, {
    Echo(call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) {
      state.lastMetadata = call.metadata;
      state.lastDeadline = Number(call.getDeadline());
      const req = call.request;
      const header = new grpc.Metadata();
      for (const v of call.metadata.get("x-echo")) header.add("x-echo", v);
      call.sendMetadata(header);
      const answer = () => {
        if (call.cancelled) return;
        const trailer = new grpc.Metadata();
        trailer.set("x-trailer", "done");
        if (req.failCode) return callback({ code: req.failCode, details: `failed as asked: ${req.text}`, metadata: trailer });
        if (req.garbage) return callback(null, { [garbage]: true }, trailer);
        callback(null, { text: req.text, padding: Buffer.alloc(req.paddingBytes, 7) }, trailer);
      };
      let timer: NodeJS.Timeout | undefined;
      call.on("cancelled", () => {
        state.cancelled++;
        clearTimeout(timer);
      });
      if (req.delayMs) timer = setTimeout(answer, req.delayMs);
      else answer();
    },
    async Count(call: grpc.ServerWritableStream<any, any>) {
      state.lastMetadata = call.metadata;
      const req = call.request;
      let gone = false;
      const goneOrDrained = () =>
        new Promise<void>((resolve) => {
          call.once("drain", resolve);
          call.once("cancelled", resolve);
        });
      call.on("cancelled", () => {
        gone = true;
        state.cancelled++;
      });
      state.stream = { written: 0, waiting: false };
      for (let i = 1; i <= req.count && !gone; i++) {
        const msg = req.garbageAt === i ? { [garbage]: true } : { index: i, padding: Buffer.alloc(req.paddingBytes, 7) };
        state.stream.written = i;
        if (!call.write(msg)) {
          state.stream.waiting = true;
          unblock();
          await goneOrDrained();
          state.stream.waiting = false;
        }
        if (req.hangAfter && i === req.hangAfter) {
          await new Promise<void>((resolve) => call.once("cancelled", resolve));
          return;
        }
      }
      if (gone) return;
      if (req.failCode) call.emit("error", { code: req.failCode, details: `failed as asked after ${req.count}` });
      else call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${LOOPBACK}:${opts.port ?? 0}`, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  state.port = port;
  state.url = `${credentials._isSecure() ? "https" : "http"}://${LOOPBACK}:${port}`;
  return state;
}
