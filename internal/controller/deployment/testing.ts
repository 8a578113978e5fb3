// Test harness for the Deployment controller's unit tests: an in-process apiserver on the memory
// store, the controller on a shared informer factory, and a simulated ReplicaSet controller +
// kubelet that writes RS status the way the real ones would (pods are created at once, become
// available only on a later tick, and a scale-down removes unavailable pods first). Not used by
// the controller itself.
import { clone, create } from "@bufbuild/protobuf";
import pino from "pino";
import type { Event } from "../../../gen/skiff/v1alpha1/coordination_pb.js";
import { DeploymentSchema, type Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { ReplicaSetSchema, ReplicaSetStatusSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { startApiServer, type ApiServer } from "../../apiserver/server.ts";
import { createEventRecorder, type EventRecorder } from "../../client/events.ts";
import { createSharedInformerFactory, type Informer, type SharedInformerFactory } from "../../client/informer.ts";
import { createResourceClient, type ResourceClient } from "../../client/resource-client.ts";
import { createApiTransport } from "../../client/transport.ts";
import { createMemoryStore } from "../../storage/memory.ts";
import type { Controller } from "../controller.ts";
import { createDeploymentController } from "./controller.ts";
import { controllerRef, getCondition, specReplicas } from "./util.ts";
import { adminCredentials, testPki } from "../../pki/testing.ts";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(20);
    }
  }
}

export interface DeploymentInit {
  replicas?: number;
  image?: string;
  strategy?: "RollingUpdate" | "Recreate";
  maxSurge?: string;
  maxUnavailable?: string;
  revisionHistoryLimit?: number;
  progressDeadlineSeconds?: number;
  paused?: boolean;
}

export function deployment(name: string, o: DeploymentInit = {}): Deployment {
  const labels = { app: name };
  const rolling = (o.strategy ?? "RollingUpdate") === "RollingUpdate";
  return create(DeploymentSchema, {
    metadata: { name, namespace: "default" },
    spec: {
      replicas: o.replicas ?? 3,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: "main", image: o.image ?? "skiff.local/web:v1" }] } },
      strategy: {
        type: o.strategy ?? "RollingUpdate",
        rollingUpdate: rolling ? { maxSurge: o.maxSurge ?? "", maxUnavailable: o.maxUnavailable ?? "" } : undefined,
      },
      revisionHistoryLimit: o.revisionHistoryLimit,
      progressDeadlineSeconds: o.progressDeadlineSeconds,
      paused: o.paused ?? false,
    },
  });
}

export interface Harness {
  server: ApiServer;
  deployments: ResourceClient<Deployment>;
  replicaSets: ResourceClient<ReplicaSet>;
  events: ResourceClient<Event>;
  /** The test's own informers (not the controller's). */
  rsInformer: Informer<ReplicaSet>;
  deploymentInformer: Informer<Deployment>;
  controller: Controller;
  recorder: EventRecorder;
  /** Called on every ReplicaSet or Deployment event the test's informers see. */
  onChange(fn: () => void): void;
  /** Waits until nothing changed for `quietMs`. */
  settle(quietMs?: number): Promise<void>;
  get(name: string): Promise<Deployment>;
  /** Read-modify-write of a Deployment's spec (retries conflicts). */
  edit(name: string, fn: (d: Deployment) => void): Promise<Deployment>;
  /** The RSes the Deployment controls, oldest first. */
  owned(name: string): ReplicaSet[];
  /** Sets an RS's status (observedGeneration = its generation). */
  setStatus(rs: ReplicaSet, replicas: number, available: number, ready?: number): Promise<void>;
  /**
   * One step of a simulated ReplicaSet controller and kubelet: every RS gets status.replicas =
   * spec; available pods beyond spec go; `becomeReady(rs)` pods that existed at the last tick
   * become available. Returns whether anything was written.
   */
  tick(becomeReady?: (rs: ReplicaSet) => number): Promise<boolean>;
  eventMessages(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const server = await startApiServer({ tls: (await testPki()).serving, store: createMemoryStore(), port: 0, heartbeatMs: 200 });
  const transport = createApiTransport(server.url, adminCredentials());
  const abort = new AbortController();
  const log = pino({ level: "silent" });
  const recorder = createEventRecorder({ transport, component: "deployment-controller" });
  const informers: SharedInformerFactory = createSharedInformerFactory(transport);
  const controller = createDeploymentController({ transport, informers, recorder, log });
  const mine = createSharedInformerFactory(transport);
  const rsInformer = mine.informerFor<ReplicaSet>("ReplicaSet");
  const deploymentInformer = mine.informerFor<Deployment>("Deployment");
  let lastChange = Date.now();
  const listeners: (() => void)[] = [];
  const changed = () => {
    lastChange = Date.now();
    for (const fn of listeners) fn();
  };
  for (const inf of [rsInformer, deploymentInformer] as Informer<any>[]) {
    inf.onAdd(changed);
    inf.onUpdate(changed);
    inf.onDelete(changed);
  }
  informers.start(abort.signal);
  mine.start(abort.signal);
  await informers.waitForSync();
  await mine.waitForSync();
  controller.run();

  const deployments = createResourceClient<Deployment>(transport, "Deployment");
  const replicaSets = createResourceClient<ReplicaSet>(transport, "ReplicaSet");
  const events = createResourceClient<Event>(transport, "Event");
  /** status.replicas per RS uid as of the last tick: pods that exist long enough to become ready. */
  const existed = new Map<string, number>();

  const h: Harness = {
    server,
    deployments,
    replicaSets,
    events,
    rsInformer,
    deploymentInformer,
    controller,
    recorder,
    onChange: (fn) => void listeners.push(fn),
    async settle(quietMs = 120) {
      await sleep(quietMs);
      while (Date.now() - lastChange < quietMs || controller.queue.len() > 0) await sleep(20);
    },
    get: (name) => deployments.get("default", name),
    async edit(name, fn) {
      for (;;) {
        const d = clone(DeploymentSchema, await h.get(name));
        fn(d);
        try {
          return await deployments.update(d);
        } catch (err) {
          if (!String(err).includes("modified")) throw err;
        }
      }
    },
    owned(name) {
      const d = deploymentInformer.get(`default/${name}`);
      return rsInformer
        .list()
        .filter((rs) => d && controllerRef(rs)?.uid === d.metadata?.uid)
        .sort((a, b) => Number(a.metadata!.creationTimestamp!.seconds - b.metadata!.creationTimestamp!.seconds) || a.metadata!.creationTimestamp!.nanos - b.metadata!.creationTimestamp!.nanos);
    },
    async setStatus(rs, replicas, available, ready = available) {
      const cur = await replicaSets.get("default", rs.metadata!.name);
      const next = clone(ReplicaSetSchema, cur);
      next.status = create(ReplicaSetStatusSchema, {
        replicas,
        fullyLabeledReplicas: replicas,
        readyReplicas: ready,
        availableReplicas: available,
        observedGeneration: cur.metadata!.generation,
      });
      // Unconditional, as the ReplicaSet controller writes its status (the Deployment controller
      // may scale this RS between the read and the write).
      next.metadata!.resourceVersion = "";
      await replicaSets.updateStatus(next);
    },
    async tick(becomeReady = (rs) => specReplicas(rs)) {
      let wrote = false;
      for (const rs of rsInformer.list()) {
        const spec = specReplicas(rs);
        const uid = rs.metadata!.uid;
        const cur = rs.status;
        let available = Math.min(cur?.availableReplicas ?? 0, spec);
        const old = Math.min(existed.get(uid) ?? 0, spec);
        available = Math.min(old, available + Math.max(0, becomeReady(rs)));
        existed.set(uid, spec);
        const settled = cur && cur.replicas === spec && cur.availableReplicas === available && cur.observedGeneration === rs.metadata!.generation;
        if (settled) continue;
        await h.setStatus(rs, spec, available);
        wrote = true;
      }
      return wrote;
    },
    async eventMessages() {
      await recorder.flush();
      return (await events.list("default")).items.map((e) => `${e.reason}: ${e.message}`);
    },
    async stop() {
      await controller.stop();
      abort.abort();
      await informers.stop();
      await mine.stop();
      await server.close();
    },
  };
  return h;
}

/** The Progressing condition as "status/reason". */
export function progressing(d: Deployment): string {
  const c = getCondition(d.status, "Progressing");
  return c ? `${c.status}/${c.reason}` : "none";
}

export function available(d: Deployment): string {
  const c = getCondition(d.status, "Available");
  return c ? `${c.status}/${c.reason}` : "none";
}
