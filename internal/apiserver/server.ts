// The apiserver: one TLS port that speaks Connect, gRPC and gRPC-Web over HTTP/2 and HTTP/1.1
// (ALPN), plus /healthz, /livez, /readyz (open) and /metrics (authenticated). Every call passes
// the request pipeline (pipeline.ts): authentication, impersonation, authorization. Only the
// apiserver touches storage.
import { create } from "@bufbuild/protobuf";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import type http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { EncryptionService } from "../../gen/skiff/v1alpha1/encryption_service_pb.js";
import { NamespaceSchema } from "../../gen/skiff/v1alpha1/namespace_pb.js";
import { kinds } from "../api/registry.ts";
import type { KubeletClientTls } from "./pod-logs.ts";
import { createAuthenticator, type Peer } from "../auth/authn/authenticator.ts";
import type { TokenAuthenticator } from "../auth/authn/token.ts";
import type { Authorizer } from "../auth/types.ts";
import { createEncryption } from "../encryption/index.ts";
import type { Store } from "../storage/store.ts";
import { withApiErrors } from "./errors.ts";
import { createDirectGrpc } from "./grpc-direct.ts";
import { createApiMetrics } from "./metrics.ts";
import { createHealthChecks } from "../metrics/health.ts";
import { bytesOf } from "./objects.ts";
import { createNamespaceFinalizer } from "./namespaces.ts";
import { createPodLogs } from "./pod-logs.ts";
import { createResourceOps, type ResourceOps } from "./resources.ts";
import { createRequestPipeline, type HeaderLookup, type Target } from "./pipeline.ts";
import { serviceImpl } from "./service.ts";
import { createServiceAllocator } from "./service-alloc.ts";
import { createKindHooks } from "./strategies.ts";
import { MAX_REQUEST_BYTES } from "./limits.ts";
import { rewriteConnectErrors } from "./wire-errors.ts";
import { createWatchBudget } from "./watch-budget.ts";
import { createWatchCache, type WatchCache } from "./watchcache.ts";
import { createWatchLimiter, watchOwnerKey } from "./watch-limits.ts";
import { AuthorizationService } from "../../gen/skiff/v1alpha1/authorization_service_pb.js";
import { createClusterAuthorization, type ClusterAuthorization } from "../auth/cluster.ts";
import { bootstrapPolicy, policyVisible } from "../auth/rbac/bootstrap.ts";
import { createAuthorizationService, reviewAttributes } from "../auth/review/service.ts";
import { generateSigningKeyPem, signingKeyFromPem, verifyKeysFromPem, type ServiceAccountAuthenticator } from "../auth/serviceaccount/index.ts";
import { advertisedAddress } from "./advertise.ts";
import { reconcileKubernetesService } from "./kubernetes-service.ts";
import { startEndpointLeases } from "./endpoint-leases.ts";
import { createServiceAccounts } from "./serviceaccounts.ts";
import { NodeIdentityService } from "../../gen/skiff/v1alpha1/node_identity_service_pb.js";
import type { Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import { createBootstrapTokenAuthenticator } from "../join/authenticator.ts";
import { createNodeIdentityService, nodeIdentityTargets } from "../join/node-identity.ts";
import { ServerService } from "../../gen/skiff/v1alpha1/server_service_pb.js";
import { createServerService, serverServiceTargets, type ServerServiceOptions } from "../serverjoin/service.ts";
import type { CertKeyPair } from "../pki/certs.ts";
import { keyFor } from "./objects.ts";

/** The apiserver's TLS material (PEM). There is no plaintext mode. */
export interface ServerTls {
  /** The serving certificate (its SANs must name the address clients use) and its key. */
  cert: string | Buffer;
  key: string | Buffer;
  /** The CA client certificates must be signed by (the cluster CA). */
  clientCa: string | Buffer;
}

export interface ApiServerOptions {
  store: Store;
  tls: ServerTls;
  /** Bearer token authenticators, asked in order (static token file, ServiceAccount tokens). */
  tokenAuthenticators?: TokenAuthenticator[];
  /** Decides every call. Default: the cluster's node authorizer + RBAC (`authorization` below). */
  authorizer?: Authorizer;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  log?: Logger;
  /** Events per kind kept for watch resumes. */
  watchCacheSize?: number;
  /** Bytes of events per kind kept for watch resumes (default 64 MiB). */
  watchCacheBytes?: number;
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
  /** Open watches allowed per client connection (0 = no limit). Default 1000. */
  maxWatchesPerConnection?: number;
  /** Bytes of unsent watch events one watcher may hold before it is cut. Default 8 MiB. */
  watchBufferBytes?: number;
  /** Bytes of unsent watch events all watchers together may hold. Default 512 MiB. */
  watchBufferTotalBytes?: number;
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
  /**
   * How the `kubernetes` Endpoints are kept: "lease" (every apiserver renews a Lease and the
   * Endpoints list the live ones: several apiservers on one etcd, endpoint-leases.ts) or "none"
   * (written once at start with this apiserver's address). Default "none".
   */
  endpointReconciler?: "lease" | "none";
  /** The "lease" reconciler's renew interval and lease duration (defaults 5 s / 15 s). */
  endpointLeaseIntervalMs?: number;
  endpointLeaseDurationSeconds?: number;
  /** Kubernetes' EncryptionConfiguration file: which resources are encrypted at rest, and how. */
  encryptionProviderConfig?: string;
  /** The client certificate PodService.Log dials node agents with (CN system:apiserver), and the CA of their serving certificates. */
  kubeletClient?: KubeletClientTls;
  /**
   * The cluster CA with its key: signs node certificates for agents that join with a token
   * (NodeIdentityService). Absent: joining answers FAILED_PRECONDITION.
   */
  nodeSigner?: { ca: CertKeyPair; certificateTtlMs?: number };
  /**
   * Servers join this control plane through this apiserver (ServerService, `skiff server`): its
   * etcd's member list and the keys every server shares. Absent: ServerService answers FAILED_PRECONDITION.
   */
  serverJoin?: Omit<ServerServiceOptions, "nodes" | "log">;
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

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const log = opts.log;
  if (!opts.tls?.cert || !opts.tls.key || !opts.tls.clientCa) throw new Error("the apiserver needs TLS: a serving certificate, its key and the client CA (see ensurePki in internal/pki)");
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
  const watchBudget = createWatchBudget({ perWatcherBytes: opts.watchBufferBytes, totalBytes: opts.watchBufferTotalBytes });
  metrics.watchBudget(watchBudget);
  for (const k of kinds) {
    caches.set(k.kind, createWatchCache(k, encryption.store, { historySize: opts.watchCacheSize, historyBytes: opts.watchCacheBytes, log, budget: watchBudget }));
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
  // podLogs is made below, from the Pod and Node operations; a log request comes after that.
  const kindHooks = createKindHooks({ store, ops, caches, allocator, serviceAccounts, namespaceFinalizer: finalizer, podLogs: () => podLogs });
  for (const k of kinds) {
    const h = kindHooks.get(k.kind);
    ops.set(k.kind, createResourceOps(k, { store, caches, hooks: h?.writeHooks, admit: h?.admit, admitWrite: (req) => authorization.admit(req), onDeleting: h?.onDeleting }));
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
  const secretKind = kinds.find((k) => k.kind === "Secret")!;
  const bootstrapTokens = createBootstrapTokenAuthenticator((ns, name) => caches.get("Secret")!.get(keyFor(secretKind, ns, name)) as Secret | undefined);
  await policyVisible(await bootstrapPolicy(ops, log), caches, log);
  const pipeline = createRequestPipeline({
    authenticator: createAuthenticator({ tokens: [...(opts.tokenAuthenticators ?? []), serviceAccounts.authenticator, bootstrapTokens] }),
    authorizer: opts.authorizer ?? authorization.authorizer,
    // A replaced authorizer (unit tests) has no policy changes to follow.
    revoker: opts.authorizer ? undefined : authorization.revoker,
    log,
  });

  function nodeIdentityHandlers(): Record<string, unknown> {
    if (opts.nodeSigner) return createNodeIdentityService({ ca: opts.nodeSigner.ca, nodes: ops.get("Node")!, certificateTtlMs: opts.nodeSigner.certificateTtlMs });
    const refuse = () => {
      throw new ConnectError("this apiserver signs no node certificates: start it with the cluster CA's key (--pki-dir, or --cluster-signing-cert-file and --cluster-signing-key-file)", Code.FailedPrecondition);
    };
    return { joinNode: refuse, renewNodeCertificates: refuse };
  }

  function serverHandlers(): Record<string, unknown> {
    if (opts.serverJoin) return createServerService({ ...opts.serverJoin, nodes: ops.get("Node")!, log });
    const refuse = () => {
      throw new ConnectError("this apiserver manages no etcd members: servers join and leave through an apiserver run by `skiff server`", Code.FailedPrecondition);
    };
    return { joinServer: refuse, removeServer: refuse };
  }

  const podLogs = createPodLogs({ pods: ops.get("Pod")!, nodes: ops.get("Node")!, kubeletClient: opts.kubeletClient, log });
  const shutdown = new AbortController();
  const readMaxBytes = MAX_REQUEST_BYTES;
  const onInternalError = (err: unknown) => log?.error({ err }, "request failed");
  const watchLimiter = createWatchLimiter(opts.maxWatchesPerConnection ?? 1000);
  const direct = createDirectGrpc({
    readMaxBytes,
    shutdownSignal: shutdown.signal,
    onDone: metrics.observe,
    onInternalError,
    storedBytes: bytesOf,
    // One context per call: who is calling (the pipeline) and which connection its watches count against.
    contextValues: (stream, headers) => pipeline.begin(sessionPeer(stream.session as http2.ServerHttp2Session), headerOf(headers)).set(watchOwnerKey, stream.session),
  });
  const connect = connectNodeAdapter({
    routes: (router) => {
      for (const k of kinds) {
        // Both paths get the same guarded handlers: none runs without a caller and a decision.
        const impl = pipeline.guard(
          k,
          serviceImpl(ops.get(k.kind)!, caches.get(k.kind)!, store, {
            heartbeatMs: opts.heartbeatMs ?? 30_000,
            onWatch: (kind, d) => metrics.watchers.inc({ kind }, d),
            onInternalError,
            watchLimiter,
            extraRpcs: kindHooks.get(k.kind)?.extraRpcs,
          }),
        );
        router.service(k.service, impl as any);
        direct.register(k.service, impl);
      }
      // Services outside service.ts answer failures through the same error table, behind the same guard.
      const encryptionImpl = pipeline.guardService(EncryptionService, withApiErrors(encryption.handlers, onInternalError), encryptionTargets);
      router.service(EncryptionService, encryptionImpl as any);
      direct.register(EncryptionService, encryptionImpl);
      const review = pipeline.guardService(AuthorizationService, withApiErrors(createAuthorizationService(authorization.authorizer), onInternalError), reviewTargets);
      router.service(AuthorizationService, review as any);
      direct.register(AuthorizationService, review);
      const nodeIdentity = pipeline.guardService(NodeIdentityService, withApiErrors(nodeIdentityHandlers(), onInternalError), nodeIdentityTargets);
      router.service(NodeIdentityService, nodeIdentity as any);
      direct.register(NodeIdentityService, nodeIdentity);
      const servers = pipeline.guardService(ServerService, withApiErrors(serverHandlers(), onInternalError), serverServiceTargets);
      router.service(ServerService, servers as any);
      direct.register(ServerService, servers);
      // After every service is registered: it rewrites the handlers the router holds.
      rewriteConnectErrors(router);
    },
    interceptors: [metrics.interceptor],
    shutdownSignal: shutdown.signal,
    readMaxBytes,
    // Strict decoding: a misspelt field is an error naming it, never silently dropped.
    jsonOptions: { ignoreUnknownFields: false },
    // Watches count against their connection (the HTTP/2 session, or the HTTP/1.1 socket).
    contextValues: (req) => pipeline.begin(requestPeer(req), headerOf(req.headers)).set(watchOwnerKey, "stream" in req ? req.stream.session : req.socket),
    // Clients that compress their requests get gzip back. Plain gRPC clients (every Skiff
    // component) take the direct path, which never compresses: compression costs more CPU than
    // the bytes it saves on loopback and LAN links (`npm run bench -- api`: list time halves).
    acceptCompression: [compressionGzip],
  });

  let ready = true;
  // Kubernetes' health paths with ?verbose, as every component answers them (internal/metrics).
  const health = createHealthChecks();
  health.add("shutdown", () => ({ ok: ready, message: ready ? undefined : "shutting down" }), { readyOnly: true });
  health.add("storage", async () => ((await store.ready().catch(() => false)) ? true : { ok: false, message: "storage unreachable" }), { readyOnly: true });
  async function handle(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) {
    const path = (req.url ?? "").split("?")[0];
    const reply = (code: number, body: string, type = "text/plain") => {
      (res as http.ServerResponse).writeHead(code, { "content-type": type });
      res.end(body);
    };
    // Open to anyone, like k3s's: a joining machine fetches the CA without trusting it and checks
    // it against the hash in its join token before it sends any secret.
    if (path === "/cacerts") return reply(200, String(opts.nodeSigner?.ca.cert ?? opts.tls.clientCa), "application/x-pem-file");
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      const r = await health.report(path, /[?&]verbose(=|&|$)/.test(req.url ?? ""));
      return reply(r.status, r.body);
    }
    if (path === "/metrics") {
      try {
        await pipeline.authorizePath(requestPeer(req), headerOf(req.headers), "get", path);
      } catch (err) {
        const e = ConnectError.from(err);
        return reply(e.code === Code.PermissionDenied ? 403 : 401, `${e.rawMessage}\n`);
      }
      return reply(200, await metrics.registry.metrics(), metrics.registry.contentType);
    }
    // A request refused before it was read in full (too large, malformed): once the answer is
    // out, the rest of its body is not wanted, and the client must not stall sending it.
    if ("stream" in req) res.once("finish", () => !req.complete && !req.stream.closed && req.stream.close(http2.constants.NGHTTP2_NO_ERROR));
    (connect as (a: unknown, b: unknown) => void)(req, res);
  }

  // One TLS port: ALPN picks HTTP/2 or HTTP/1.1. A client certificate is asked for but not
  // required, so bearer tokens work too; the pipeline refuses calls with neither.
  const server = http2.createSecureServer(
    {
      cert: opts.tls.cert,
      key: opts.tls.key,
      ca: opts.tls.clientCa,
      requestCert: true,
      rejectUnauthorized: false,
      allowHTTP1: true,
    },
    (req, res) => void handle(req, res),
  );
  // Plain gRPC calls go the direct path; the rest to the compatibility layer (req/res) and connect.
  const compat = server.listeners("stream")[0] as (...a: unknown[]) => void;
  server.removeAllListeners("stream");
  server.on("stream", (stream, headers, ...rest) => {
    if (!direct.serve(stream, headers)) compat.call(server, stream, headers, ...rest);
  });
  const sockets = new Set<TLSSocket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("secureConnection", (socket: TLSSocket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 6443, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const host = opts.host ?? "127.0.0.1";
  const url = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log?.info({ url }, "apiserver listening");
  const advertiseAddress = opts.advertiseAddress ?? advertisedAddress(host, log);
  await reconcileKubernetesService({ ops, serviceCidr: opts.serviceCidr, advertiseAddress, port, log }).catch((err) =>
    log?.warn({ err: String(err) }, "could not reconcile the kubernetes service"),
  );
  const endpointLeases =
    opts.endpointReconciler === "lease"
      ? startEndpointLeases({ ops, address: advertiseAddress, port, intervalMs: opts.endpointLeaseIntervalMs, leaseDurationSeconds: opts.endpointLeaseDurationSeconds, log })
      : undefined;

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
      // First, while storage is still ours: clients stop being sent here.
      await Promise.race([endpointLeases?.stop(), new Promise((r) => setTimeout(r, 2000).unref())]);
      ready = false;
      clearInterval(compactor);
      clearInterval(repairTimer);
      finalizer.stop();
      authorization.close();
      // Stop taking connections and tell HTTP/2 clients to go elsewhere (GOAWAY): calls in flight
      // finish, new ones see a clean "unavailable" and retry against the next server.
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.close();
      // HTTP/1.1 connections have no GOAWAY: end them (a keep-alive one would hold close() up).
      for (const s of sockets) if (s.alpnProtocol !== "h2") s.end();
      // Watches never finish by themselves: end them (clients resume from their last version).
      // The reason is the status connect-served watches end with (abort() alone would make it a plain cancel).
      shutdown.abort(new ConnectError("server shutting down: call again (a watch: resume from the last resource version)", Code.Unavailable));
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

/** EncryptionService as RBAC sees it: reading the status is `get`, reload and rewrite are `update`. */
const encryptionConfigs = { apiGroup: "apiserver.config.k8s.io", resource: "encryptionconfigurations", subresource: "", namespace: "", name: "" };
const encryptionTargets: Record<string, Target> = {
  getEncryptionStatus: () => ({ ...encryptionConfigs, verb: "get" }),
  reloadEncryptionConfig: () => ({ ...encryptionConfigs, verb: "update" }),
  rewriteEncryptedResources: () => ({ ...encryptionConfigs, verb: "update" }),
};

/** AuthorizationService's calls, as the review service names them (CreateSelfSubjectAccessReview → createSelfSubjectAccessReview). */
const reviewTargets: Record<string, Target> = Object.fromEntries(
  Object.entries(reviewAttributes).map(([rpc, a]) => [rpc[0].toLowerCase() + rpc.slice(1), () => ({ ...a, subresource: "", namespace: "", name: "" })]),
);

/** The connection of an HTTP/2 call: the certificate's identity is cached on the session. */
function sessionPeer(session: http2.ServerHttp2Session): Peer {
  return { key: session, socket: session.socket as TLSSocket };
}

function requestPeer(req: http.IncomingMessage | http2.Http2ServerRequest): Peer {
  if ("stream" in req && req.stream) return sessionPeer(req.stream.session as http2.ServerHttp2Session);
  return { key: req.socket, socket: req.socket as TLSSocket };
}

function headerOf(headers: http.IncomingHttpHeaders): HeaderLookup {
  return (name) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(",") : v;
  };
}
