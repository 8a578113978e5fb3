// The node agent: composes the pieces of this folder (see README.md for the flow).
//
//   start: runtime version ─► log server ─► register Node ─► Lease + status timers
//          ─► pod informer (spec.nodeName=<node>) synced ─► orphans removed ─► pod workers run
//   pod workers are queued by: informer events · runtime events (exit, oom) · probe results ·
//          a periodic resync · their own requeueAfter (back-offs)
//   stop:  timers, informer, workers and the log server stop; containers keep running (the next
//          agent adopts them)
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ServiceAccountService } from "../../gen/skiff/v1alpha1/service_account_service_pb.js";
import type { ConfigMap, Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { createEventRecorder } from "../client/events.ts";
import { createInformer, createSharedInformerFactory, NAMESPACE_INDEX, namespaceIndexFunc } from "../client/informer.ts";
import { createServiceProxy } from "../network/proxy/index.ts";
import { createResourceClient } from "../client/resource-client.ts";
import { createWorkQueue } from "../client/workqueue.ts";
import { componentLog } from "../log/log.ts";
import { hostInfo, type HostInfo } from "./host-info.ts";
import { createNodeDns } from "./dns.ts";
import { createEvictionManager } from "./eviction/manager.ts";
import { createImageImporter } from "./image-import.ts";
import { createNodeLease } from "./lease.ts";
import { createLogsService } from "./logs.ts";
import { createLocalPathAgent } from "./local-path.ts";
import { createClaimVolumes } from "./pvc-volume.ts";
import type { PersistentVolume, PersistentVolumeClaim } from "../../gen/skiff/v1alpha1/storage_pb.js";
import { LOCAL_PATH_DIR_ANNOTATION } from "../api/storage.ts";
import { createNodeReporter } from "./node.ts";
import { createPodRouting } from "./pod-routing.ts";
import { isTerminal } from "./pod-status.ts";
import { createPodWorkers } from "./pod-worker.ts";
import { createProbeManager } from "./probes.ts";
import { createPullSecrets } from "./pull-secrets.ts";
import { serviceEnvVars, servicesForPod } from "./service-env.ts";
import { startAgentServer, type AgentServer } from "./server.ts";
import { createTokenProjector } from "./serviceaccount-token.ts";
import { createVolumeManager } from "./volumes/index.ts";
import { createStatusManager } from "./status.ts";
import { podDirs, removeOrphans } from "./teardown.ts";
import { sleep } from "../util/sleep.ts";
import { timedSync } from "./metrics.ts";
import { DEFAULT_STATUS_REFRESH_MS, type Agent, type AgentOptions } from "./agent-options.ts";

export { DEFAULT_STATUS_REFRESH_MS, type Agent, type AgentEvictionOptions, type AgentOptions } from "./agent-options.ts";

/** How long stop() waits for pod syncs under way. */
const STOP_WAIT_MS = 3000;
const WILDCARD = new Set(["0.0.0.0", "::", ""]);

export function createAgent(opts: AgentOptions): Agent {
  const { nodeName, network, log, metrics } = opts;
  const runtime = metrics ? metrics.instrument(opts.runtime) : opts.runtime;
  metrics?.containersFrom(opts.runtime);
  const heartbeatMs = opts.heartbeatMs ?? 10_000;
  const resyncMs = opts.resyncMs ?? 10_000;
  const listen = opts.listen ?? { host: "127.0.0.1", port: 10250 };
  const podsClient = createResourceClient<Pod>(opts.transport, "Pod");
  const configMapsClient = createResourceClient<ConfigMap>(opts.transport, "ConfigMap");
  const secretsClient = createResourceClient<Secret>(opts.transport, "Secret");
  const serviceAccounts = createClient(ServiceAccountService, opts.transport);
  const stopping = new AbortController();
  const timers: ReturnType<typeof setInterval>[] = [];
  let stopOwnNode: (() => Promise<void>) | undefined;
  let server: AgentServer | undefined;
  let runtimeName = "containerd";
  let hostIP = "";
  /** The node's capacity (= allocatable), known once started. */
  let allocatable: Record<string, string> = {};
  async function requestToken(pod: Pod, expirationSeconds: number, audiences?: string[]) {
    const m = pod.metadata!;
    const res = await serviceAccounts.createToken({
      namespace: m.namespace,
      name: pod.spec?.serviceAccountName || "default",
      expirationSeconds: BigInt(expirationSeconds),
      audiences,
      boundObjectRef: { kind: "Pod", apiVersion: "v1", name: m.name, uid: m.uid },
    });
    return { token: res.token, expiresAt: timestampDate(res.expirationTimestamp!) };
  }
  // Secrets and tokens on tmpfs, unless told otherwise: by default on nodes with a pod bridge
  // (real ones); hollow nodes keep them in plain directories.
  const tmpfs = opts.memoryVolumes ?? network.hostGateway !== undefined;

  const informer = createInformer<Pod>(podsClient, {
    fieldSelector: `spec.nodeName=${nodeName}`,
    indexers: { uid: (p) => [p.metadata?.uid ?? ""] },
    log: componentLog(log, "pod-informer"),
  });
  const lookup = (uid: string) => informer.byIndex("uid", uid)[0];
  // Services for the pods' environment and, with Endpoints, for the node's DNS and the service
  // proxy: one factory, so the node keeps one watch per kind.
  const serviceInformers = createSharedInformerFactory(opts.transport, { log: componentLog(log, "service-informers") });
  const services = serviceInformers.informerFor<Service>("Service");
  services.addIndexers({ [NAMESPACE_INDEX]: namespaceIndexFunc });
  const servesDns = !opts.dns?.clusterDns && network.hostGateway !== undefined;
  const endpoints = servesDns ? serviceInformers.informerFor<Endpoints>("Endpoints") : undefined;
  const dns = createNodeDns({ ...opts.dns, network, services, endpoints, log: componentLog(log, "dns") });
  const queue = createWorkQueue<string>({
    name: "pods",
    baseDelayMs: 500,
    maxDelayMs: 30_000,
    onError: (uid, err) => log.warn({ podUid: uid, err: err instanceof Error ? err.message : String(err) }, "pod sync failed; retrying"),
  });
  const status = createStatusManager({ client: podsClient, log });
  const probes = createProbeManager({
    runtime,
    log: componentLog(log, "prober"),
    secondMs: opts.probeSecondMs,
    onChange: (uid) => queue.add(uid),
    onResult: metrics?.probe,
    onKill: (uid, _name, id, message, grace) => {
      podWorkers.requestKill(uid, id, message, grace);
      queue.add(uid);
    },
  });
  // persistentVolumeClaim volumes, and the local-path volumes of this node (<root-dir>/storage).
  const localPathDir = join(opts.rootDir, "storage");
  const volumesClient = createResourceClient<PersistentVolume>(opts.transport, "PersistentVolume");
  const claimVolumes = createClaimVolumes({
    nodeName,
    localPathDir,
    claims: createResourceClient<PersistentVolumeClaim>(opts.transport, "PersistentVolumeClaim"),
    volumes: volumesClient,
  });
  const localPath = createLocalPathAgent({ nodeName, dir: localPathDir, volumes: volumesClient, log });
  const tokens = createTokenProjector({ rootDir: opts.rootDir, clusterCa: opts.clusterCa, tmpfs, requestToken });
  const podWorkers = createPodWorkers({
    nodeName,
    rootDir: opts.rootDir,
    runtime,
    network,
    pods: podsClient,
    status,
    probes,
    log: componentLog(log, "pod-worker"),
    lookup,
    hostIP: () => hostIP,
    runtimeName: () => runtimeName,
    resolvConfPath: opts.resolvConfPath ?? "/etc/resolv.conf",
    dns: () => dns.settings(),
    serviceEnv: (ns, links) => serviceEnvVars(servicesForPod(ns, services.byIndex(NAMESPACE_INDEX, ns), services.get("default/kubernetes"), links)),
    crashLoop: {
      initialMs: opts.crashLoopBackoff?.initialMs ?? 10_000,
      maxMs: opts.crashLoopBackoff?.maxMs ?? 300_000,
      resetMs: opts.crashLoopBackoff?.resetMs ?? 600_000,
    },
    imagePull: { initialMs: opts.imagePullBackoff?.initialMs ?? 10_000, maxMs: opts.imagePullBackoff?.maxMs ?? 300_000 },
    startRetry: { initialMs: opts.crashLoopBackoff?.initialMs ?? 10_000, maxMs: opts.crashLoopBackoff?.maxMs ?? 300_000 },
    configData: async (kind, namespace, name) => {
      try {
        if (kind === "ConfigMap") {
          const cm = await configMapsClient.get(namespace, name);
          const out: Record<string, string> = { ...cm.data };
          for (const [k, v] of Object.entries(cm.binaryData)) out[k] = Buffer.from(v).toString("utf8");
          return out;
        }
        const secret = await secretsClient.get(namespace, name);
        return Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v).toString("utf8")]));
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
        throw err;
      }
    },
    credentials: createPullSecrets({ client: createResourceClient<Secret>(opts.transport, "Secret"), log: componentLog(log, "pull-secrets") }).credentials,
    tokens,
    volumes: createVolumeManager({
      rootDir: opts.rootDir,
      claims: claimVolumes,
      tmpfs,
      requestToken,
      nodeAllocatable: () => allocatable,
      // Read at every pod sync (a Get each, which the node authorizer allows for objects the
      // node's pods use): the files follow their objects within the resync period.
      async readObject(kind, namespace, name) {
        try {
          if (kind === "ConfigMap") {
            const cm = await configMapsClient.get(namespace, name);
            const out: Record<string, Uint8Array> = {};
            for (const [k, v] of Object.entries(cm.data)) out[k] = Buffer.from(v, "utf8");
            for (const [k, v] of Object.entries(cm.binaryData)) out[k] = v;
            return out;
          }
          return { ...(await secretsClient.get(namespace, name)).data };
        } catch (err) {
          if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
          throw err;
        }
      },
    }),
    nodeAllocatable: () => allocatable,
    recorder: createEventRecorder({ transport: opts.transport, component: "skiff-agent", host: nodeName, log }),
    firstStatusDelayMs: opts.firstStatusDelayMs ?? 500,
    insecureRegistries: opts.insecureRegistries,
    security: { seccompDefault: opts.seccompDefault ?? false, seccompProfileRoot: opts.seccompProfileRoot ?? join(opts.rootDir, "seccomp") },
  });
  const routing = opts.podRouting && opts.podCidr
    ? createPodRouting({ ...opts.podRouting, transport: opts.transport, nodeName, podCidr: opts.podCidr, log })
    : undefined;
  const proxy = opts.proxy
    ? createServiceProxy({ ...opts.proxy, transport: opts.transport, informers: serviceInformers, podCidr: opts.podCidr, nodeName, log: componentLog(log, "proxy") })
    : undefined;
  const recorder = createEventRecorder({ transport: opts.transport, component: "skiff-agent", host: nodeName, log });
  const eviction = opts.eviction
    ? createEvictionManager({
        ...opts.eviction,
        runtime,
        rootDir: opts.rootDir,
        log: componentLog(log, "eviction"),
        activePods: () => informer.list().filter((p) => !isTerminal(p) && !p.metadata!.deletionTimestamp),
        evict(pod, message) {
          podWorkers.evict(pod.metadata!.uid, message);
          queue.add(pod.metadata!.uid);
          recorder.event(pod, "Warning", "Evicted", message);
        },
        onImageRemoved: (i) => log.info({ image: i.names[0] ?? i.id, sizeBytes: i.sizeBytes }, "removed unused image"),
      })
    : undefined;
  const importer = opts.importImages ? createImageImporter({ runtime, path: opts.importImages, log: componentLog(log, "image-import") }) : undefined;

  informer.onAdd((p) => {
    if (metrics && !isTerminal(p) && p.status?.phase !== "Running") metrics.podSeen(p.metadata!.uid);
    queue.add(p.metadata!.uid);
  });
  if (metrics) informer.onUpdate((_old, p) => p.status?.phase === "Running" && metrics.podRunning(p.metadata!.uid));
  // A change of the status alone (mostly this agent's own writes) needs no sync: the resync catches
  // anything else, as in the kubelet. Spec changes move the generation; deletion sets its fields.
  informer.onUpdate((old, p) => {
    const a = old.metadata!;
    const b = p.metadata!;
    const deleting = (m: typeof a) => `${m.deletionTimestamp?.seconds ?? ""}/${m.deletionGracePeriodSeconds ?? ""}`;
    if (a.generation !== b.generation || deleting(a) !== deleting(b)) {
      queue.add(b.uid);
    }
  });
  informer.onDelete((p) => {
    metrics?.podGone(p.metadata!.uid);
    podWorkers.remember(p);
    queue.add(p.metadata!.uid);
  });

  /** Container exits and OOM kills queue their pod at once; a broken stream is re-opened. */
  async function watchRuntimeEvents(): Promise<void> {
    while (!stopping.signal.aborted) {
      try {
        for await (const ev of runtime.events(stopping.signal)) {
          const info = await runtime.containerStatus(ev.containerId).catch(() => undefined);
          if (info) queue.add(info.podUid);
        }
      } catch (err) {
        if (stopping.signal.aborted) return;
        log.warn({ err: String(err) }, "runtime event stream failed; re-subscribing");
      }
      await sleep(1000, stopping.signal);
    }
  }

  /** Re-scans the import path; pods waiting for an image that arrived are synced at once. */
  let scanning = false;
  async function rescanImages(): Promise<void> {
    if (!importer || scanning || stopping.signal.aborted) return;
    scanning = true;
    try {
      const imported = await importer.scan();
      if (imported.length > 0) {
        podWorkers.imagesChanged();
        for (const p of informer.list()) queue.add(p.metadata!.uid);
      }
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, "image import scan failed");
    } finally {
      scanning = false;
    }
  }

  async function retryUntilDone<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let delay = 500; ; delay = Math.min(delay * 2, 30_000)) {
      try {
        return await fn();
      } catch (err) {
        if (stopping.signal.aborted) throw new Error(`agent stopped while trying to ${what}`, { cause: err });
        log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: delay }, `could not ${what}; retrying`);
        await sleep(delay, stopping.signal);
      }
    }
  }

  return {
    async start() {
      let version;
      try {
        version = await runtime.version();
      } catch (err) {
        throw new Error(`container runtime not reachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      runtimeName = version.name;
      // Images from --import-images are there before any pod is synced (and in the first node status).
      if (importer) {
        const imported = await importer.scan();
        log.info({ path: importer.path, images: imported.length }, "initial image import done");
      }
      server = await startAgentServer({
        host: listen.host,
        port: listen.port,
        tls: opts.tls,
        observability: opts.observability,
        service: createLogsService({
          nodeName,
          runtime,
          lookupPod: (ns, name) => informer.get(`${ns}/${name}`),
          pollMs: opts.logPollMs,
          log,
        }),
      });
      const info: HostInfo = { ...hostInfo(), ...opts.hostInfo };
      info.internalIP = opts.nodeIP ?? opts.hostInfo?.internalIP ?? (WILDCARD.has(listen.host) ? info.internalIP : listen.host);
      hostIP = info.internalIP;
      log.info(
        { node: nodeName, runtime: `${version.name} ${version.version}`, listen: `${listen.host}:${server.port}`, internalIP: hostIP, insecureRegistries: opts.insecureRegistries, importImages: opts.importImages },
        "agent starting",
      );

      allocatable = { cpu: info.cpu, memory: info.memory, pods: "110", ...opts.capacity };
      const nodes = createNodeReporter({
        client: createResourceClient<Node>(opts.transport, "Node"),
        nodeName,
        runtime,
        facts: { info, capacity: allocatable, daemonPort: server.port },
        podCidr: opts.podCidr,
        registrationAnnotations: opts.registrationAnnotations,
        statusRefreshMs: opts.statusRefreshMs ?? DEFAULT_STATUS_REFRESH_MS,
        log,
        pressure: eviction?.pressure,
        annotations: { [LOCAL_PATH_DIR_ANNOTATION]: localPathDir },
      });
      const lease = createNodeLease({
        client: createResourceClient<Lease>(opts.transport, "Lease"),
        nodeName,
        durationSeconds: opts.leaseDurationSeconds ?? 40,
        node: () => nodes.current(),
      });
      await retryUntilDone("register the node", () => nodes.register());
      // This node's own Node, watched: what others write to it (the lifecycle controller marking it
      // Unknown while it was cut off) must be seen to be corrected at the next heartbeat. With pod
      // routing the agent already watches every Node; otherwise only its own.
      if (routing) routing.onNode(nodeName, (n) => nodes.observe(n));
      else {
        const ownNode = createInformer<Node>(createResourceClient<Node>(opts.transport, "Node"), {
          fieldSelector: `metadata.name=${nodeName}`,
          log: componentLog(log, "node-informer"),
        });
        ownNode.onAdd((n) => nodes.observe(n));
        ownNode.onUpdate((_old, n) => nodes.observe(n));
        ownNode.start(stopping.signal);
        stopOwnNode = () => ownNode.stop();
      }
      // Readiness follows the lease: an agent whose last renewal failed has lost the apiserver.
      let leaseError: string | undefined = "the node lease was not renewed yet";
      const renew = () =>
        lease.renew().then(
          () => (leaseError = undefined),
          (err) => {
            leaseError = `the last node lease renewal failed: ${err instanceof Error ? err.message : String(err)}`;
            log.warn({ err: String(err) }, "could not renew the node lease");
          },
        );
      opts.health?.add("apiserver", () => ({ ok: leaseError === undefined, message: leaseError }), { readyOnly: true });
      opts.health?.add("pods-synced", () => ({ ok: informer.hasSynced(), message: informer.hasSynced() ? undefined : "the node's pods are not listed yet" }), { readyOnly: true });
      await renew();
      timers.push(
        setInterval(() => {
          void renew();
          nodes.refresh().catch((err) => log.warn({ err: String(err) }, "could not update the node status"));
        }, heartbeatMs),
      );

      await routing?.start();
      proxy?.start(stopping.signal);
      informer.start(stopping.signal);
      serviceInformers.start(stopping.signal);
      localPath.start(stopping.signal);
      await Promise.all([informer.waitForSync(stopping.signal), serviceInformers.waitForSync(stopping.signal)]);
      // DNS is up before any pod starts: their first lookups must not fail.
      try {
        await dns.start();
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new Error(`cannot serve cluster DNS: ${why} (is another DNS server on port 53 of every address? pass --cluster-dns to use another server)`, { cause: err });
      }
      // Only pods whose directories an earlier agent left can have its token files to read back.
      tokens.foundOnDisk(await podDirs(opts.rootDir));
      const removed = await removeOrphans(
        { runtime, network, rootDir: opts.rootDir, log },
        (uid) => lookup(uid) !== undefined || podWorkers.known(uid),
      );
      if (removed.length > 0) log.info({ pods: removed.length }, "removed orphaned pods");
      queue.run(opts.podWorkers ?? 64, metrics ? timedSync(podWorkers.syncPod, metrics) : (uid) => podWorkers.syncPod(uid));
      void watchRuntimeEvents();
      eviction?.start(stopping.signal);
      timers.push(
        setInterval(() => {
          // Spread over half a period: syncing every pod at once makes a burst of runtime calls
          // that delays pods being started right then (measured by `npm run bench -- pods`).
          const spread = (uid: string) => queue.addAfter(uid, Math.random() * (resyncMs / 2));
          for (const p of informer.list()) spread(p.metadata!.uid);
          for (const uid of podWorkers.uids()) spread(uid);
        }, resyncMs),
      );
      if (importer) timers.push(setInterval(() => void rescanImages(), opts.importRescanMs ?? 10_000));
      log.info({ pods: informer.list().length }, "agent ready");
    },
    async stop() {
      stopping.abort();
      for (const t of timers) clearInterval(t);
      probes.stop();
      await Promise.all([informer.stop(), routing?.stop(), dns.stop(), stopOwnNode?.()]);
      await proxy?.stop();
      await serviceInformers.stop();
      // A sync may be waiting out a pod's grace period (up to minutes). The containers already
      // got their SIGTERM and the pod keeps its deletionTimestamp, so the next agent finishes the
      // kill: stopping need not wait for it.
      await Promise.race([queue.shutDown(), new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
      await server?.close();
    },
    port: () => server?.port ?? 0,
    reloadServingTls(tls) {
      opts.tls = tls;
      server?.setTls(tls);
    },
  };
}
