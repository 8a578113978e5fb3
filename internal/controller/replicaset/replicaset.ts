// The ReplicaSet controller, after Kubernetes' ReplicaSetController: keeps spec.replicas active
// pods that match the selector and are controlled by the ReplicaSet.
//
//   sync(rs):  active pods of the namespace
//                │ claim: adopt matching orphans, release owned pods that no longer match
//                ▼
//              owned pods ── expectations satisfied? ── too few: create from the template in
//                │                                       slow-start batches (1, 2, 4, …)
//                │                                      too many: delete the least valuable
//                ▼
//              status (replicas, fullyLabeled, ready, available, observedGeneration, ReplicaFailure)
//
// Expectations keep a slow cache from causing duplicates: after asking for N creates (or these
// deletes) the controller does not manage that ReplicaSet again until the pod informer has shown
// them (or 5 minutes have passed).
import { clone } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PodSchema, type Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { equals } from "@bufbuild/protobuf";
import { ReplicaSetStatusSchema } from "../../../gen/skiff/v1alpha1/replica_set_pb.js";
import { labelSelectorFromObject, matchesLabels, type LabelSelector } from "../../api/selector.ts";
import { keyOf, NAMESPACE_INDEX, namespaceIndexFunc, splitKey } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { configOf, createController, type Controller, type ControllerContext, type Result } from "../controller.ts";
import { CONTROLLER_INDEX, controllerIndexFunc, controlledBy, ensureIndex, orphansIn } from "../indexes.ts";
import { createExpectations, type Expectations, type ExpectationsOptions } from "./expectations.ts";
import { controllerRefOf, isPodActive, isPodReady, newControllerRef, podFromTemplate, podsToDelete } from "./pods.ts";
import { calculateStatus, type ManageFailure } from "./status.ts";

export interface ReplicaSetControllerOptions {
  /** Most pods created or deleted for one ReplicaSet in one sync. Default 500. */
  burstReplicas?: number;
  /** Expectations (see expectations.ts): timeout and clock. */
  expectations?: ExpectationsOptions;
  /** Wall clock for availability (minReadySeconds). Default Date.now. */
  now?: () => number;
  workers?: number;
}

export interface ReplicaSetController extends Controller {
  expectations: Expectations;
}

const isGone = (err: unknown) => {
  const code = ConnectError.from(err).code;
  return code === Code.NotFound || code === Code.Aborted; // Aborted: uid precondition, a new pod of that name
};

const errorMessage = (err: unknown) => (err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err));

/** Runs fn count times: 1 at first, then doubling batches, stopping after a batch with a failure. */
export async function slowStartBatch(count: number, initialBatch: number, fn: () => Promise<unknown>): Promise<{ successes: number; error?: unknown }> {
  let remaining = count;
  let successes = 0;
  for (let batch = Math.min(remaining, initialBatch); batch > 0; batch = Math.min(2 * batch, remaining)) {
    const results = await Promise.allSettled(Array.from({ length: batch }, () => fn()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    successes += results.filter((r) => r.status === "fulfilled").length;
    if (failed) return { successes, error: failed.reason };
    remaining -= batch;
  }
  return { successes };
}

export function createReplicaSetController(ctx: ControllerContext, opts: ReplicaSetControllerOptions = {}): ReplicaSetController {
  const log = ctx.log; // the manager binds "controller" already
  const burst = opts.burstReplicas ?? 500;
  const wallNow = opts.now ?? Date.now;
  const expectations = createExpectations(opts.expectations);
  const expectationsTimeoutMs = opts.expectations?.timeoutMs ?? 5 * 60_000;
  const rsInformer = ctx.informers.informerFor<ReplicaSet>("ReplicaSet");
  const podInformer = ctx.informers.informerFor<Pod>("Pod");
  ensureIndex(rsInformer, NAMESPACE_INDEX, namespaceIndexFunc);
  ensureIndex(podInformer, CONTROLLER_INDEX, controllerIndexFunc);
  const pods = createResourceClient<Pod>(ctx.transport, "Pod");
  const replicaSets = createResourceClient<ReplicaSet>(ctx.transport, "ReplicaSet");

  const controller = createController({
    name: "replicaset",
    log,
    workers: opts.workers ?? configOf(ctx).concurrentSyncs,
    reconcile: (key) => sync(key),
  });

  // ---- mapping events to ReplicaSets ----

  /** The ReplicaSet a controller reference points at, if it is that very object (same uid). */
  function resolveRef(namespace: string, ref: { kind: string; name: string; uid: string } | undefined): ReplicaSet | undefined {
    if (!ref || ref.kind !== "ReplicaSet") return undefined;
    const rs = rsInformer.get(`${namespace}/${ref.name}`);
    return rs?.metadata?.uid === ref.uid ? rs : undefined;
  }

  function selectorOf(rs: ReplicaSet): LabelSelector | undefined {
    try {
      return labelSelectorFromObject(rs.spec?.selector);
    } catch {
      return undefined;
    }
  }

  /** ReplicaSets of the pod's namespace whose selector matches it (for orphans). */
  function matchingReplicaSets(pod: Pod): ReplicaSet[] {
    const labels = pod.metadata?.labels ?? {};
    return rsInformer.byIndex(NAMESPACE_INDEX, pod.metadata?.namespace ?? "").filter((rs) => {
      const sel = selectorOf(rs);
      return sel !== undefined && matchesLabels(sel, labels);
    });
  }

  function podDeleted(pod: Pod): void {
    const rs = resolveRef(pod.metadata?.namespace ?? "", controllerRefOf(pod));
    if (!rs) return;
    const key = keyOf(rs);
    expectations.deletionObserved(key, keyOf(pod));
    controller.enqueue(key);
  }

  function podAdded(pod: Pod): void {
    if (pod.metadata?.deletionTimestamp) {
      podDeleted(pod); // e.g. seen first after a restart: it will not count as a replica
      return;
    }
    const ref = controllerRefOf(pod);
    if (ref) {
      const rs = resolveRef(pod.metadata?.namespace ?? "", ref);
      if (!rs) return;
      const key = keyOf(rs);
      expectations.creationObserved(key);
      controller.enqueue(key);
      return;
    }
    for (const rs of matchingReplicaSets(pod)) controller.enqueue(keyOf(rs));
  }

  function podUpdated(old: Pod, cur: Pod): void {
    if (old.metadata?.resourceVersion === cur.metadata?.resourceVersion) return; // a resync
    const labelsChanged = JSON.stringify(old.metadata?.labels ?? {}) !== JSON.stringify(cur.metadata?.labels ?? {});
    if (cur.metadata?.deletionTimestamp) {
      // Graceful deletion: the pod stops counting now, not when it is finally removed.
      podDeleted(cur);
      if (labelsChanged) podDeleted(old);
      return;
    }
    const ns = cur.metadata?.namespace ?? "";
    const oldRef = controllerRefOf(old);
    const curRef = controllerRefOf(cur);
    const refChanged = oldRef?.uid !== curRef?.uid;
    if (refChanged && oldRef) {
      const prev = resolveRef(ns, oldRef);
      if (prev) controller.enqueue(keyOf(prev));
    }
    if (curRef) {
      const rs = resolveRef(ns, curRef);
      if (!rs) return;
      const key = keyOf(rs);
      controller.enqueue(key);
      // Becoming available takes minReadySeconds after becoming ready: look again then.
      const minReady = rs.spec?.minReadySeconds ?? 0;
      if (minReady > 0 && !isPodReady(old) && isPodReady(cur)) controller.queue.addAfter(key, minReady * 1000 + 10);
      return;
    }
    if (labelsChanged || refChanged) for (const rs of matchingReplicaSets(cur)) controller.enqueue(keyOf(rs));
  }

  rsInformer.onAdd((rs) => controller.enqueue(keyOf(rs)));
  rsInformer.onUpdate((_old, rs) => controller.enqueue(keyOf(rs)));
  rsInformer.onDelete((rs) => {
    expectations.forget(keyOf(rs));
    controller.enqueue(keyOf(rs));
  });
  podInformer.onAdd(podAdded);
  podInformer.onUpdate(podUpdated);
  podInformer.onDelete(podDeleted);

  // ---- claiming: adoption and release ----

  async function claimPods(rs: ReplicaSet, selector: LabelSelector, active: Pod[]): Promise<Pod[]> {
    const uid = rs.metadata!.uid;
    const deleting = rs.metadata?.deletionTimestamp !== undefined;
    const owned: Pod[] = [];
    let adoptable: Promise<void> | undefined;
    // Before adopting, make sure the ReplicaSet still exists as this object and is not being
    // deleted, reading the API rather than the (possibly stale) cache, as Kubernetes does.
    const canAdopt = () =>
      (adoptable ??= replicaSets.get(rs.metadata!.namespace, rs.metadata!.name).then((fresh) => {
        if (fresh.metadata?.uid !== uid) throw new Error(`replicaset ${keyOf(rs)} was replaced (uid ${fresh.metadata?.uid}): not adopting`);
        if (fresh.metadata?.deletionTimestamp) throw new Error(`replicaset ${keyOf(rs)} is being deleted: not adopting`);
      }));
    // Almost always every pod is simply ours or someone else's: sort those out without a promise
    // per pod (a sync runs for each pod event, over all the ReplicaSet's pods); only pods to
    // release or adopt take a call.
    const changes: (() => Promise<void>)[] = [];
    for (const pod of active) {
      const labels = pod.metadata?.labels ?? {};
      const ref = controllerRefOf(pod);
      if (ref) {
        if (ref.uid !== uid) continue; // someone else's
        if (matchesLabels(selector, labels)) owned.push(pod);
        else if (!deleting) changes.push(() => release(rs, pod));
        continue;
      }
      if (deleting || !matchesLabels(selector, labels)) continue;
      changes.push(async () => {
        await canAdopt();
        const adopted = await adopt(rs, pod);
        if (adopted) owned.push(adopted);
      });
    }
    if (changes.length === 0) return owned;
    const errors: unknown[] = [];
    await Promise.all(changes.map((change) => change().catch((err: unknown) => void errors.push(err))));
    if (errors.length > 0) throw errors[0];
    return owned;
  }

  async function adopt(rs: ReplicaSet, pod: Pod): Promise<Pod | undefined> {
    const next = clone(PodSchema, pod);
    next.metadata!.ownerReferences = [...next.metadata!.ownerReferences.filter((r) => r.uid !== rs.metadata!.uid), newControllerRef(rs, "apps/v1", "ReplicaSet")];
    try {
      const updated = await pods.update(next); // conditional: the resource version we saw
      log.info({ replicaset: keyOf(rs), pod: keyOf(pod) }, "adopted pod");
      return updated;
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    }
  }

  async function release(rs: ReplicaSet, pod: Pod): Promise<void> {
    const next = clone(PodSchema, pod);
    next.metadata!.ownerReferences = next.metadata!.ownerReferences.filter((r) => r.uid !== rs.metadata!.uid);
    try {
      await pods.update(next);
      log.info({ replicaset: keyOf(rs), pod: keyOf(pod) }, "released pod that no longer matches the selector");
    } catch (err) {
      if (ConnectError.from(err).code === Code.NotFound) return;
      throw err;
    }
  }

  // ---- creating and deleting ----

  async function manageReplicas(rs: ReplicaSet, key: string, owned: Pod[]): Promise<ManageFailure | undefined> {
    const want = rs.spec?.replicas ?? 1;
    const diff = owned.length - want;
    if (diff < 0) {
      const n = Math.min(-diff, burst);
      // Before the first create: an event for a pod of ours may come before the call returns.
      expectations.expectCreations(key, n);
      log.debug({ replicaset: key, want, have: owned.length, creating: n }, "too few replicas");
      const { successes, error } = await slowStartBatch(n, 1, async () => {
        const pod = await pods.create(podFromTemplate(rs));
        ctx.recorder.event(rs, "Normal", "SuccessfulCreate", `Created pod: ${pod.metadata?.name}`);
      });
      // Pods not created (failed, or skipped after a failure) will never be observed.
      if (n - successes > 0) expectations.creationObserved(key, n - successes);
      if (error !== undefined) {
        const message = errorMessage(error);
        ctx.recorder.event(rs, "Warning", "FailedCreate", `Error creating: ${message}`);
        log.warn({ replicaset: key, err: message, created: successes, wanted: n }, "creating pods failed");
        return { reason: "FailedCreate", message };
      }
    } else if (diff > 0) {
      const victims = podsToDelete(owned, Math.min(diff, burst));
      const victimKeys = victims.map((p) => keyOf(p));
      expectations.expectDeletions(key, victimKeys);
      log.debug({ replicaset: key, want, have: owned.length, deleting: victimKeys }, "too many replicas");
      let failure: ManageFailure | undefined;
      await Promise.all(
        victims.map(async (pod) => {
          const m = pod.metadata!;
          try {
            await pods.delete(m.namespace, m.name, { uid: m.uid });
            ctx.recorder.event(rs, "Normal", "SuccessfulDelete", `Deleted pod: ${m.name}`);
          } catch (err) {
            // Its deletion will not be observed through us (or already was): stop expecting it.
            expectations.deletionObserved(key, keyOf(pod));
            if (isGone(err)) return;
            const message = errorMessage(err);
            ctx.recorder.event(rs, "Warning", "FailedDelete", `Error deleting: ${message}`);
            failure ??= { reason: "FailedDelete", message };
          }
        }),
      );
      return failure;
    }
    return undefined;
  }

  // ---- reconcile ----

  async function sync(key: string): Promise<Result> {
    const rs = rsInformer.get(key);
    if (!rs) {
      expectations.forget(key);
      return;
    }
    const { namespace } = splitKey(key);
    let selector: LabelSelector;
    try {
      selector = labelSelectorFromObject(rs.spec?.selector);
    } catch (err) {
      log.warn({ replicaset: key, err: errorMessage(err) }, "invalid selector; not managing this replicaset");
      return;
    }
    const needsSync = expectations.satisfied(key);
    const candidates = [
      ...podInformer.byIndex(CONTROLLER_INDEX, controlledBy(rs.metadata!.uid)),
      ...podInformer.byIndex(CONTROLLER_INDEX, orphansIn(namespace)),
    ];
    const active = candidates.filter(isPodActive);
    const owned = await claimPods(rs, selector, active);

    let failure: ManageFailure | undefined;
    if (needsSync && !rs.metadata?.deletionTimestamp) failure = await manageReplicas(rs, key, owned);

    const status = calculateStatus(rs, owned, failure, wallNow());
    if (!rs.status || !equals(ReplicaSetStatusSchema, status, rs.status)) {
      const next = clone(ReplicaSetSchema, rs);
      next.status = status;
      next.metadata!.resourceVersion = ""; // status is ours alone: write it whatever the version
      try {
        await replicaSets.updateStatus(next);
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
    }
    if (failure) throw new Error(`${failure.reason}: ${failure.message}`);

    // Look again when something is due without an event to tell us: pods becoming available,
    // or expectations that may time out.
    const want = rs.spec?.replicas ?? 1;
    const minReady = rs.spec?.minReadySeconds ?? 0;
    if (minReady > 0 && status.readyReplicas === want && status.availableReplicas !== want) return { requeueAfterMs: minReady * 1000 };
    const pending = expectations.pending(key);
    if (!expectations.satisfied(key) && pending) return { requeueAfterMs: Math.max(1000, expectationsTimeoutMs - pending.ageMs + 10) };
    return;
  }

  return Object.assign(controller, { expectations });
}

/** The ControllerFactory for all.ts. */
export const replicaSetController = (ctx: ControllerContext): Controller => createReplicaSetController(ctx);
