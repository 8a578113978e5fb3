// The Deployment controller: rolls a Deployment's pod template out through ReplicaSets it owns,
// like Kubernetes' (apps/v1). This file wires informers to the work queue and claims RSes
// (adopts orphans that match the selector, releases owned ones that no longer do); sync.ts takes
// the rollout steps.
//
// Watches: Deployments (their own key), ReplicaSets (the owning Deployment, or for an orphan
// every Deployment whose selector matches it), Pods (for Recreate, which waits for old pods to be
// gone: a pod's RS's Deployment).
import { create } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Deployment } from "../../../gen/skiff/v1alpha1/deployment_pb.js";
import { OwnerReferenceSchema } from "../../../gen/skiff/v1alpha1/meta_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import { labelSelectorFromObject, matchesLabels, type LabelSelector } from "../../api/selector.ts";
import { keyOf, NAMESPACE_INDEX, namespaceIndexFunc, type Informer } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { configOf, createController, type Controller, type ControllerContext, type ControllerFactory, type Result } from "../controller.ts";
import { CONTROLLER_INDEX, controllerIndexFunc, controlledBy, ensureIndex } from "../indexes.ts";
import { createFreshness } from "./freshness.ts";
import { rsKey, syncDeployment, type SyncDeps } from "./sync.ts";
import { controllerRef, isRecreate } from "./util.ts";

export const CONTROLLER_NAME = "deployment";

function selectorOf(d: Deployment): LabelSelector | undefined {
  try {
    const sel = labelSelectorFromObject(d.spec?.selector);
    // An empty selector would claim every RS in the namespace: never act on one.
    return sel.requirements.length === 0 ? undefined : sel;
  } catch {
    return undefined;
  }
}

export const createDeploymentController: ControllerFactory = (ctx: ControllerContext): Controller => {
  const deploymentsInf = ctx.informers.informerFor<Deployment>("Deployment");
  const rsInf = ctx.informers.informerFor<ReplicaSet>("ReplicaSet");
  const podInf = ctx.informers.informerFor<Pod>("Pod");
  ensureIndex(deploymentsInf, NAMESPACE_INDEX, namespaceIndexFunc);
  ensureIndex(rsInf, NAMESPACE_INDEX, namespaceIndexFunc);
  ensureIndex(podInf, CONTROLLER_INDEX, controllerIndexFunc);

  const deployments = createResourceClient<Deployment>(ctx.transport, "Deployment");
  const replicaSets = createResourceClient<ReplicaSet>(ctx.transport, "ReplicaSet");
  const freshness = createFreshness();
  const log = ctx.log;

  const deps: SyncDeps = {
    deployments,
    replicaSets,
    recorder: ctx.recorder,
    freshness,
    podsOf: (rs) => podInf.byIndex(CONTROLLER_INDEX, controlledBy(rs.metadata!.uid)),
  };

  const controller = createController({ name: CONTROLLER_NAME, reconcile, log, workers: configOf(ctx).concurrentSyncs });

  // ---- event handlers ----

  /** The Deployment that controls an RS (checked by uid), if any. */
  function ownerOf(rs: ReplicaSet): Deployment | undefined {
    const ref = controllerRef(rs);
    if (!ref || ref.kind !== "Deployment") return undefined;
    const d = deploymentsInf.get(`${rs.metadata!.namespace}/${ref.name}`);
    return d?.metadata?.uid === ref.uid ? d : undefined;
  }

  /** Deployments an orphan RS could be adopted by. */
  function matchingDeployments(rs: ReplicaSet): Deployment[] {
    return deploymentsInf.byIndex(NAMESPACE_INDEX, rs.metadata!.namespace).filter((d) => {
      const sel = selectorOf(d);
      return sel !== undefined && matchesLabels(sel, rs.metadata?.labels);
    });
  }

  function enqueueForRS(rs: ReplicaSet): void {
    const ref = controllerRef(rs);
    if (ref) {
      const d = ownerOf(rs);
      if (d) controller.enqueue(keyOf(d));
      return;
    }
    for (const d of matchingDeployments(rs)) controller.enqueue(keyOf(d));
  }

  function enqueueForPod(pod: Pod): void {
    const ref = controllerRef(pod);
    if (!ref || ref.kind !== "ReplicaSet") return;
    const rs = rsInf.get(`${pod.metadata!.namespace}/${ref.name}`);
    const d = rs && rs.metadata?.uid === ref.uid ? ownerOf(rs) : undefined;
    if (d && isRecreate(d)) controller.enqueue(keyOf(d));
  }

  const off: (() => void)[] = [];
  const seen = (kind: string, obj: ApiObject, deleted: boolean) => freshness.observed(`${kind}/${keyOf(obj)}`, obj.metadata?.resourceVersion ?? "", deleted);
  const onDeployment = (deleted: boolean) => (d: Deployment) => {
    seen("Deployment", d, deleted);
    controller.enqueue(keyOf(d));
  };
  const onRS = (deleted: boolean) => (rs: ReplicaSet) => {
    seen("ReplicaSet", rs, deleted);
    enqueueForRS(rs);
  };
  off.push(
    deploymentsInf.onAdd(onDeployment(false)),
    deploymentsInf.onUpdate((_old, d) => onDeployment(false)(d)),
    deploymentsInf.onDelete(onDeployment(true)),
    rsInf.onAdd(onRS(false)),
    rsInf.onUpdate((old, rs) => {
      // A changed controller: the old owner must notice it lost the RS.
      const before = controllerRef(old);
      if (before && before.uid !== controllerRef(rs)?.uid) enqueueForRS(old);
      onRS(false)(rs);
    }),
    rsInf.onDelete(onRS(true)),
    podInf.onDelete(enqueueForPod),
    podInf.onUpdate((old, pod) => {
      if (old.status?.phase !== pod.status?.phase) enqueueForPod(pod);
    }),
  );

  // ---- claiming ----

  /**
   * The RSes this Deployment controls after adopting orphans its selector matches and releasing
   * owned ones it no longer matches. Adoption first re-reads the Deployment from the API, so a
   * Deployment deleted (or replaced) meanwhile adopts nothing.
   */
  async function claim(d: Deployment, sel: LabelSelector): Promise<ReplicaSet[]> {
    const uid = d.metadata!.uid;
    const deleting = !!d.metadata!.deletionTimestamp;
    const owned: ReplicaSet[] = [];
    let confirmed = false;
    for (const rs of rsInf.byIndex(NAMESPACE_INDEX, d.metadata!.namespace)) {
      const ref = controllerRef(rs);
      const matches = matchesLabels(sel, rs.metadata?.labels);
      if (ref) {
        if (ref.uid !== uid) continue;
        if (matches || deleting) {
          owned.push(rs);
          continue;
        }
        const next = cloneMessage(ReplicaSetSchema, rs);
        next.metadata!.ownerReferences = next.metadata!.ownerReferences.filter((r) => r.uid !== uid);
        await writeClaim(d, next, "released");
        continue;
      }
      if (!matches || deleting || rs.metadata?.deletionTimestamp) continue;
      if (!confirmed) {
        const fresh = await deployments.get(d.metadata!.namespace, d.metadata!.name);
        if (fresh.metadata?.uid !== uid || fresh.metadata?.deletionTimestamp) return owned;
        confirmed = true;
      }
      const next = cloneMessage(ReplicaSetSchema, rs);
      next.metadata!.ownerReferences.push(
        create(OwnerReferenceSchema, { apiVersion: "apps/v1", kind: "Deployment", name: d.metadata!.name, uid, controller: true, blockOwnerDeletion: true }),
      );
      const adopted = await writeClaim(d, next, "adopted");
      if (adopted) owned.push(adopted);
    }
    return owned;
  }

  async function writeClaim(d: Deployment, rs: ReplicaSet, what: string): Promise<ReplicaSet | undefined> {
    try {
      const out = await replicaSets.update(rs);
      freshness.wrote(rsKey(out), out.metadata!.resourceVersion, keyOf(d));
      log.info({ deployment: keyOf(d), replicaSet: rs.metadata!.name }, `replica set ${what}`);
      return out;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    }
  }

  // ---- reconcile ----

  async function reconcile(key: string): Promise<Result> {
    const d = deploymentsInf.get(key);
    if (!d) return;
    // Decide only from caches that hold our own last writes (the events are on their way).
    const cachedRv = (k: string) => {
      const slash = k.indexOf("/");
      const inf: Informer<ApiObject> = k.slice(0, slash) === "Deployment" ? deploymentsInf : rsInf;
      return inf.get(k.slice(slash + 1))?.metadata?.resourceVersion;
    };
    if (!freshness.settled(key, cachedRv)) return { requeueAfterMs: 1000 };
    const sel = selectorOf(d);
    if (!sel) {
      ctx.recorder.event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.");
      return;
    }
    try {
      const owned = await claim(d, sel);
      return await syncDeployment(deps, d, owned);
    } catch (err) {
      const code = ConnectError.from(err).code;
      // Someone wrote first (a user, the ReplicaSet controller): try again from the new state.
      if (code === Code.Aborted) {
        log.debug({ deployment: key, err: String(err) }, "conflict; retrying");
        return { requeue: true };
      }
      // Gone meanwhile: its delete event brings it back here if anything is left to do.
      if (code === Code.NotFound && !deploymentsInf.get(key)) return;
      throw err;
    }
  }

  return {
    ...controller,
    async stop() {
      for (const fn of off.splice(0)) fn();
      await controller.stop();
    },
  };
};
