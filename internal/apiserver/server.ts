// The apiserver: one port that speaks Connect, gRPC and gRPC-Web over HTTP/2 (h2c) and HTTP/1.1,
// plus /healthz, /readyz and /metrics. Only the apiserver touches storage.
import { create } from "@bufbuild/protobuf";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Logger } from "pino";
import { EncryptionService } from "../../gen/skiff/v1alpha1/encryption_service_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { kinds } from "../api/registry.ts";
import type { KubeletClientTls } from "../agent/link-certs.ts";
import { createEncryption } from "../encryption/index.ts";
import type { Store } from "../storage/store.ts";
import { createDirectGrpc } from "./grpc-direct.ts";
import { createApiMetrics } from "./metrics.ts";
import { bytesOf } from "./objects.ts";
import { createNamespaceFinalizer } from "./namespaces.ts";
import { createPodLogs } from "./pod-logs.ts";
import { createResourceOps, type ResourceOps } from "./resources.ts";
import { registerService } from "./service.ts";
import { createServiceAllocator } from "./service-alloc.ts";
import { createWatchCache, type WatchCache } from "./watchcache.ts";
import { AuthorizationService } from "../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { createClusterAuthorization, type ClusterAuthorization } from "../auth/cluster.ts";
import { bootstrapPolicy, policyVisible } from "../auth/rbac/bootstrap.ts";
import { createAuthorizationService } from "../auth/review/service.ts";
import { generateSigningKeyPem, signingKeyFromPem, verifyKeysFromPem, type ServiceAccountAuthenticator } from "../auth/serviceaccount/index.ts";
import { advertisedAddress } from "./advertise.ts";
import { reconcileKubernetesService } from "./kubernetes-service.ts";
import { createServiceAccounts } from "./serviceaccounts.ts";

export interface ApiServerOptions {
  store: Store;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  log?: Logger;
  /** Events per kind kept for watch resumes. */
  watchCacheSize?: number;
  heartbeatMs?: number;
  /** How often storage history is compacted (0 = never). */
  compactionIntervalMs?: number;
  /** Namespaces created at start, like Kubernetes' "default". */
  initialNamespaces?: string[];
  /** Where Service ClusterIPs come from. Default 10.96.0.0/12. */
  serviceCidr?: string;
  /** Where NodePorts come from, "FIRST-LAST". Default 30000-32767. */
  nodePortRange?: string;
  /** How often Service allocations are reconciled with Services. Default 3 min; 0 = only at start. */
  allocationRepairMs?: number;
  /** ServiceAccount tokens: the signing key (PEM; absent: a key made for this process only). */
  serviceAccountSigningKey?: string;
  /** More public keys (PEM) whose tokens are accepted, e.g. the previous signing key. */
  serviceAccountPublicKeys?: string;
  /** The tokens' issuer ("iss"); default https://kubernetes.default.svc. */
  serviceAccountIssuer?: string;
  /** Audiences accepted in tokens; default [issuer]. */
  apiAudiences?: string[];
  /** Where pods reach this apiserver (the `kubernetes` Service's Endpoints). Default: see advertise.ts. */
  advertiseAddress?: string;
  /** Kubernetes' EncryptionConfiguration file: which resources are encrypted at rest, and how. */
  encryptionProviderConfig?: string;
  /** The client certificate PodService.Log dials node agents with (CN system:apiserver), and the CA of their serving certificates. */
  kubeletClient?: KubeletClientTls;
}

export interface ApiServer {
  url: string;
  port: number;
  ops: Map<string, ResourceOps>;
  caches: Map<string, WatchCache>;
  /** Node authorizer + RBAC from the watch caches, and the revoker of watches that lost access. */
  authorization: ClusterAuthorization;
  /** ServiceAccount tokens as bearer credentials: the request pipeline's TokenAuthenticator. */
  serviceAccountAuthenticator: ServiceAccountAuthenticator;
  /** Compacts storage and the watch caches up to a revision (default: the current one). */
  compact(revision?: number): Promise<number>;
  close(): Promise<void>;
}

const HTTP2_PREFACE = "PRI * HTTP/2.0";

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const log = opts.log;
  const metrics = createApiMetrics();
  // Everything above this store sees plaintext; encrypted resources are ciphertext in opts.store.
  const encryption = createEncryption(opts.store, opts.encryptionProviderConfig, kinds, log);
  const store = metrics.instrument(encryption.store);
  const caches = new Map<string, WatchCache>();
  const ops = new Map<string, ResourceOps>();
  const finalizer = createNamespaceFinalizer(ops, store, log);
  const allocator = createServiceAllocator({
    store,
    serviceKind: kinds.find((k) => k.kind === "Service")!,
    serviceCidr: opts.serviceCidr,
    nodePortRange: opts.nodePortRange,
  });
  for (const k of kinds) {
    caches.set(k.kind, createWatchCache(k, encryption.store, { historySize: opts.watchCacheSize, log }));
  }
  if (!opts.serviceAccountSigningKey) log?.warn("no service account signing key given: tokens issued now stop working when this apiserver restarts");
  const serviceAccounts = createServiceAccounts({
    ops,
    caches,
    log,
    signingKey: signingKeyFromPem(opts.serviceAccountSigningKey ?? generateSigningKeyPem().privateKey),
    verifyKeys: opts.serviceAccountPublicKeys ? verifyKeysFromPem(opts.serviceAccountPublicKeys) : [],
    issuer: opts.serviceAccountIssuer,
    audiences: opts.apiAudiences,
  });
  for (const k of kinds) {
    const hooks = k.kind === "Service" ? allocator.hooks : undefined;
    const admit = k.kind === "Pod" ? serviceAccounts.admitPod : undefined;
    ops.set(k.kind, createResourceOps(k, { store, caches, hooks, admit, onNamespaceTerminating: (n) => finalizer.terminate(n) }));
  }
  await Promise.all([...caches.values()].map((c) => c.start()));

  async function repairAllocations(): Promise<void> {
    const r = await allocator.repair();
    // Services stored without a ClusterIP (before allocation existed) get one through a normal update.
    for (const svc of r.needIP) {
      await ops.get("Service")!.update(svc).catch((err) => log?.warn({ service: `${svc.metadata?.namespace}/${svc.metadata?.name}`, err: String(err) }, "could not allocate a ClusterIP"));
    }
    if (r.created.length + r.removed.length + r.needIP.length > 0) {
      log?.info({ created: r.created, removed: r.removed, allocatedFor: r.needIP.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`) }, "repaired service allocations");
    }
  }
  await repairAllocations();
  const repairMs = opts.allocationRepairMs ?? 180_000;
  const repairTimer = repairMs > 0 ? setInterval(() => void repairAllocations().catch((err) => log?.warn({ err: String(err) }, "service allocation repair failed")), repairMs) : undefined;
  repairTimer?.unref();

  for (const name of opts.initialNamespaces ?? ["default", "skiff-system"]) {
    await ops
      .get("Namespace")!
      .create(create(NamespaceSchema, { metadata: { name } }))
      .catch((err) => {
        if (!(err instanceof ConnectError && err.code === Code.AlreadyExists)) throw err;
      });
  }
  await finalizer.resume();
  // Authorization answers from the watch caches; the default policy exists before anyone asks.
  const authorization = createClusterAuthorization(caches);
  await policyVisible(await bootstrapPolicy(ops, log), caches, log);

  const podLogs = createPodLogs({ pods: ops.get("Pod")!, nodes: ops.get("Node")!, kubeletClient: opts.kubeletClient });
  const shutdown = new AbortController();
  const readMaxBytes = 16 * 1024 * 1024;
  const direct = createDirectGrpc({
    readMaxBytes,
    shutdownSignal: shutdown.signal,
    onDone: metrics.observe,
    onInternalError: (err) => log?.error({ err }, "request failed"),
    storedBytes: bytesOf,
  });
  const connect = connectNodeAdapter({
    routes: (router) => {
      for (const k of kinds) {
        const impl = registerService(router, ops.get(k.kind)!, caches.get(k.kind)!, store, {
          heartbeatMs: opts.heartbeatMs ?? 30_000,
          onWatch: (kind, d) => metrics.watchers.inc({ kind }, d),
          extraRpcs: k.kind === "ServiceAccount" ? serviceAccounts.rpcs : k.kind === "Pod" ? { log: podLogs.log } : undefined,
        });
        direct.register(k.service, impl);
      }
      router.service(EncryptionService, encryption.handlers as any);
      direct.register(EncryptionService, encryption.handlers);
      const review = createAuthorizationService(authorization.authorizer);
      router.service(AuthorizationService, review as any);
      direct.register(AuthorizationService, review);
    },
    interceptors: [metrics.interceptor],
    shutdownSignal: shutdown.signal,
    readMaxBytes,
    // Clients that compress their requests get gzip back. Plain gRPC clients (every Skiff
    // component) take the direct path, which never compresses: compression costs more CPU than
    // the bytes it saves on loopback and LAN links (`npm run bench -- api`: list time halves).
    acceptCompression: [compressionGzip],
  });

  let ready = true;
  async function handle(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) {
    const path = (req.url ?? "").split("?")[0];
    const reply = (code: number, body: string, type = "text/plain") => {
      (res as http.ServerResponse).writeHead(code, { "content-type": type });
      res.end(body);
    };
    if (path === "/healthz" || path === "/livez") return reply(200, "ok\n");
    if (path === "/readyz") {
      const ok = ready && (await store.ready().catch(() => false));
      return reply(ok ? 200 : 503, ok ? "ok\n" : "storage unreachable\n");
    }
    if (path === "/metrics") return reply(200, await metrics.registry.metrics(), metrics.registry.contentType);
    (connect as (a: unknown, b: unknown) => void)(req, res);
  }

  const h2 = http2.createServer({}, (req, res) => void handle(req, res));
  // Plain gRPC calls go the direct path; the rest to the compatibility layer (req/res) and connect.
  const compat = h2.listeners("stream")[0] as (...a: unknown[]) => void;
  h2.removeAllListeners("stream");
  h2.on("stream", (stream, headers, ...rest) => {
    if (!direct.serve(stream, headers)) compat.call(h2, stream, headers, ...rest);
  });
  const h1 = http.createServer((req, res) => void handle(req, res));
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  // One port for both protocols: look at the first bytes of each connection.
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.once("data", (chunk) => {
      socket.pause();
      socket.unshift(chunk);
      if (chunk.subarray(0, HTTP2_PREFACE.length).toString("latin1") === HTTP2_PREFACE) {
        // http2 takes the socket's handle and drains what is buffered itself.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 6443, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const host = opts.host ?? "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log?.info({ url }, "apiserver listening");
  await reconcileKubernetesService({ ops, serviceCidr: opts.serviceCidr, advertiseAddress: opts.advertiseAddress ?? advertisedAddress(host, log), port, log }).catch((err) =>
    log?.warn({ err: String(err) }, "could not reconcile the kubernetes service"),
  );

  async function compact(revision?: number): Promise<number> {
    const rev = revision ?? (await opts.store.currentRevision());
    await opts.store.compact(rev);
    for (const c of caches.values()) c.compact(rev);
    log?.info({ revision: rev }, "compacted storage");
    return rev;
  }
  // Like Kubernetes: compact to the revision seen one interval ago, so history always spans one interval.
  let lastSeen = 0;
  const compactor =
    opts.compactionIntervalMs && opts.compactionIntervalMs > 0
      ? setInterval(() => {
          void (async () => {
            const now = await opts.store.currentRevision();
            if (lastSeen > 0) await compact(lastSeen);
            lastSeen = now;
          })().catch((err) => log?.warn({ err: String(err) }, "compaction failed"));
        }, opts.compactionIntervalMs)
      : undefined;
  compactor?.unref();

  return {
    url,
    port,
    ops,
    caches,
    authorization,
    serviceAccountAuthenticator: serviceAccounts.authenticator,
    compact,
    async close() {
      ready = false;
      clearInterval(compactor);
      clearInterval(repairTimer);
      finalizer.stop();
      authorization.close();
      // Stop taking connections and tell HTTP/2 clients to go elsewhere (GOAWAY): calls in flight
      // finish, new ones see a clean "unavailable" and retry against the next server.
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.close();
      h1.closeIdleConnections();
      // Watches never finish by themselves: end them (clients resume from their last version).
      shutdown.abort();
      for (const c of caches.values()) c.stop();
      podLogs.close();
      // Last resort for connections that do not go away.
      const hard = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, 1000);
      await closed;
      clearTimeout(hard);
    },
  };
}
