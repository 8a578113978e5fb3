// The connection to containerd: one HTTP/2 (gRPC) session over containerd's unix socket, and
// typed clients for the services Skiff calls. Every call carries `containerd-namespace`; calls
// made through `withLease(id)` also carry `containerd-lease`, so what they create is protected
// from garbage collection until the lease is deleted (see lease.ts).

import { connect } from "node:net";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Containers } from "../../../gen/containerd/services/containers/v1/containers_pb.js";
import { Content } from "../../../gen/containerd/services/content/v1/content_pb.js";
import { Diff } from "../../../gen/containerd/services/diff/v1/diff_pb.js";
import { Events } from "../../../gen/containerd/services/events/v1/events_pb.js";
import { Images } from "../../../gen/containerd/services/images/v1/images_pb.js";
import { Leases } from "../../../gen/containerd/services/leases/v1/leases_pb.js";
import { Namespaces } from "../../../gen/containerd/services/namespaces/v1/namespace_pb.js";
import { Snapshots } from "../../../gen/containerd/services/snapshots/v1/snapshots_pb.js";
import { Tasks } from "../../../gen/containerd/services/tasks/v1/tasks_pb.js";
import { Version } from "../../../gen/containerd/services/version/v1/version_pb.js";

export const DEFAULT_ADDRESS = "/run/containerd/containerd.sock";
export const DEFAULT_NAMESPACE = "skiff";
/** containerd's server accepts 16 MiB messages; match it both ways (grpc's default is 4 MiB). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const NAMESPACE_RE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export interface Services {
  version: Client<typeof Version>;
  namespaces: Client<typeof Namespaces>;
  leases: Client<typeof Leases>;
  content: Client<typeof Content>;
  images: Client<typeof Images>;
  snapshots: Client<typeof Snapshots>;
  diff: Client<typeof Diff>;
  containers: Client<typeof Containers>;
  tasks: Client<typeof Tasks>;
  events: Client<typeof Events>;
}

export interface ContainerdClient extends Services {
  readonly address: string;
  readonly namespace: string;
  /** The same services, every call also carrying `containerd-lease: <leaseId>`. */
  withLease(leaseId: string): Services;
  /** Closes the connection (and every open stream). */
  close(): void;
}

export interface ContainerdClientOptions {
  /** Path of containerd's gRPC socket; default /run/containerd/containerd.sock. */
  address?: string;
  /** containerd namespace all objects live in; default "skiff". */
  namespace?: string;
}

/** A transport that adds fixed headers to every call of `inner`. */
function withHeaders(inner: Transport, headers: Record<string, string>): Transport {
  const merge = (init: ConstructorParameters<typeof Headers>[0]): Headers => {
    const h = new Headers(init);
    for (const [k, v] of Object.entries(headers)) h.set(k, v);
    return h;
  };
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) =>
      inner.unary(method, signal, timeoutMs, merge(header), input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      inner.stream(method, signal, timeoutMs, merge(header), input, contextValues),
  };
}

function services(transport: Transport): Services {
  return {
    version: createClient(Version, transport),
    namespaces: createClient(Namespaces, transport),
    leases: createClient(Leases, transport),
    content: createClient(Content, transport),
    images: createClient(Images, transport),
    snapshots: createClient(Snapshots, transport),
    diff: createClient(Diff, transport),
    containers: createClient(Containers, transport),
    tasks: createClient(Tasks, transport),
    events: createClient(Events, transport),
  };
}

export function createContainerdClient(opts: ContainerdClientOptions = {}): ContainerdClient {
  const address = opts.address ?? DEFAULT_ADDRESS;
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  if (namespace.length > 76 || !NAMESPACE_RE.test(namespace)) {
    throw new Error(`invalid containerd namespace "${namespace}" (letters, digits, "." "_" "-" between them, at most 76)`);
  }
  // The authority is not used for routing: every stream goes to the one unix socket.
  const baseUrl = "http://localhost";
  const sessionManager = new Http2SessionManager(
    baseUrl,
    { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 },
    { createConnection: () => connect(address), maxSessionMemory: 64 },
  );
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  const base = withHeaders(transport, { "containerd-namespace": namespace });
  return {
    address,
    namespace,
    ...services(base),
    withLease: (leaseId) => services(withHeaders(base, { "containerd-lease": leaseId })),
    close: () => sessionManager.abort(),
  };
}
