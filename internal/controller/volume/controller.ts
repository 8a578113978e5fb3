// The PersistentVolume controller (Kubernetes' persistentvolume-binder, pvc-protection and
// pv-protection controllers, plus the built-in local-path provisioner). Keys: "claim/<ns>/<name>"
// and "volume/<name>"; one worker, so two claims never race for one volume in this process (and
// a stale cache only costs an ABORTED write, retried). See README.md for the flow.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ObjectReferenceSchema } from "../../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Node } from "../../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import type { PersistentVolume, PersistentVolumeClaim, StorageClass } from "../../../gen/skiff/v1alpha1/storage_pb.js";
import { claimClass, claimRefKey, isLocalPath, LOCAL_PATH_CLASS, LOCAL_PATH_PROVISIONER, PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER, SELECTED_NODE_ANNOTATION } from "../../api/storage.ts";
import { findVolumeFor, isPreBoundTo, mismatch } from "../../api/volume-match.ts";
import { keyOf } from "../../client/informer.ts";
import { createResourceClient } from "../../client/resource-client.ts";
import { podClaimNames, volumeFitsNode } from "../../scheduler/core/plugins/volume-binding.ts";
import { createController, type Controller, type ControllerContext, type Result } from "../controller.ts";
import { localPathClass, localPathVolume, provisionedName } from "./provision.ts";

const CLAIM = "claim/";
const VOLUME = "volume/";
/** How soon a claim waiting on something no event announces (a node's directory) is looked at again. */
const RECHECK_MS = 5_000;

const ignoreGone = (err: unknown) => {
  const code = ConnectError.from(err).code;
  if (code !== Code.NotFound) throw err;
};

export function createVolumeController(ctx: ControllerContext): Controller {
  const claims = ctx.informers.informerFor<PersistentVolumeClaim>("PersistentVolumeClaim");
  const volumes = ctx.informers.informerFor<PersistentVolume>("PersistentVolume");
  const classes = ctx.informers.informerFor<StorageClass>("StorageClass");
  const pods = ctx.informers.informerFor<Pod>("Pod");
  const nodes = ctx.informers.informerFor<Node>("Node");
  const claimApi = createResourceClient<PersistentVolumeClaim>(ctx.transport, "PersistentVolumeClaim");
  const volumeApi = createResourceClient<PersistentVolume>(ctx.transport, "PersistentVolume");
  const classApi = createResourceClient<StorageClass>(ctx.transport, "StorageClass");
  const log = ctx.log; // the manager binds "controller" already
  const controller = createController({ name: "persistentvolume", log, workers: 1, reconcile });

  controller.watch(claims, (c) => [CLAIM + keyOf(c), ...(c.spec?.volumeName ? [VOLUME + c.spec.volumeName] : [])]);
  controller.watch(volumes, (v) => [VOLUME + keyOf(v), ...(claimRefKey(v) ? [CLAIM + claimRefKey(v)] : [])]);
  // A pod gone may free its claims for deletion; a volume or class appearing may serve a claim.
  controller.watch(pods, (p) => podClaimNames(p.spec).map((n) => `${CLAIM}${p.metadata!.namespace}/${n}`));
  const unbound = () => claims.list().filter((c) => !c.spec?.volumeName).map((c) => CLAIM + keyOf(c));
  controller.watch(classes, unbound);
  const offVolumeAdds = volumes.onAdd(() => unbound().forEach((k) => controller.enqueue(k)));

  async function reconcile(key: string): Promise<Result> {
    if (key.startsWith(CLAIM)) return syncClaim(key.slice(CLAIM.length));
    if (key.startsWith(VOLUME)) return syncVolume(key.slice(VOLUME.length));
  }

  // ---- claims ----
  async function syncClaim(key: string): Promise<Result> {
    const pvc = claims.get(key);
    if (!pvc) return;
    if (pvc.metadata!.deletionTimestamp) return releaseClaimFinalizer(pvc);
    const volumeName = pvc.spec!.volumeName;
    if (volumeName === "") return bindClaim(pvc);
    const pv = volumes.get(volumeName);
    if (!pv) return setClaimPhase(pvc, pvc.status?.phase === "Bound" ? "Lost" : "Pending");
    const ref = pv.spec?.claimRef;
    if (!ref?.name) {
      // Named by the claim: bind it if it serves the claim (Kubernetes' checkVolumeSatisfyClaim).
      const why = mismatch(pv, pvc);
      if (why) return event(pvc, "Warning", "VolumeMismatch", `volume "${volumeName}" ${why}`);
      return bind(pv, pvc);
    }
    if (!isPreBoundTo(pv, pvc)) return setClaimPhase(pvc, pvc.status?.phase === "Bound" ? "Lost" : "Pending");
    return setClaimBound(pvc, pv);
  }

  async function bindClaim(pvc: PersistentVolumeClaim): Promise<Result> {
    const sc = classes.get(claimClass(pvc));
    const selected = pvc.metadata!.annotations[SELECTED_NODE_ANNOTATION] ?? "";
    const waits = sc?.volumeBindingMode === "WaitForFirstConsumer";
    if (waits && selected === "") {
      return event(pvc, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding");
    }
    const node = selected ? nodes.get(selected) : undefined;
    const nodeFits = waits ? (pv: PersistentVolume) => node !== undefined && volumeFitsNode(pv, { name: selected, labels: node.metadata!.labels }) : undefined;
    const pv = findVolumeFor(pvc, volumes.list(), { nodeFits });
    if (pv) return bind(pv, pvc);
    if (sc?.provisioner === LOCAL_PATH_PROVISIONER && waits) return provision(pvc, sc, selected);
    const why = sc ? `no persistent volume of class "${sc.metadata!.name}" fits the claim` : claimClass(pvc) === "" ? "no persistent volumes available for this claim and no storage class is set" : `storageclass "${claimClass(pvc)}" not found`;
    event(pvc, "Warning", sc || claimClass(pvc) === "" ? "FailedBinding" : "ProvisioningFailed", why);
  }

  async function provision(pvc: PersistentVolumeClaim, sc: StorageClass, nodeName: string): Promise<Result> {
    if (volumes.get(provisionedName(pvc))) return; // made; its event binds it
    const node = nodes.get(nodeName);
    if (!node) {
      event(pvc, "Warning", "ProvisioningFailed", `selected node "${nodeName}" not found`);
      return { requeueAfterMs: RECHECK_MS };
    }
    const pv = localPathVolume(pvc, sc, node);
    if (typeof pv === "string") {
      event(pvc, "Warning", "ProvisioningFailed", pv);
      return { requeueAfterMs: RECHECK_MS };
    }
    try {
      await volumeApi.create(pv);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    }
    event(pvc, "Normal", "ProvisioningSucceeded", `Successfully provisioned volume ${pv.metadata!.name} on node ${nodeName} at ${pv.spec!.hostPath!.path}`);
  }

  /** claimRef on the volume, then volumeName on the claim, then both statuses (Kubernetes' order). */
  async function bind(pv: PersistentVolume, pvc: PersistentVolumeClaim): Promise<Result> {
    const m = pvc.metadata!;
    let vol = pv;
    const ref = pv.spec!.claimRef;
    if (!ref || ref.uid !== m.uid || ref.name !== m.name || ref.namespace !== m.namespace) {
      const next = structuredClone(pv);
      next.spec!.claimRef = create(ObjectReferenceSchema, { kind: "PersistentVolumeClaim", apiVersion: "v1", namespace: m.namespace, name: m.name, uid: m.uid, resourceVersion: m.resourceVersion });
      vol = await volumeApi.update(next);
    }
    if (vol.status?.phase !== "Bound") vol = await volumeApi.updateStatus(withPhase(vol, "Bound"));
    let claim = pvc;
    if (claim.spec!.volumeName !== pv.metadata!.name) {
      const next = structuredClone(claim);
      next.spec!.volumeName = pv.metadata!.name;
      claim = await claimApi.update(next);
    }
    await setClaimBound(claim, vol);
    log.info({ claim: `${m.namespace}/${m.name}`, volume: pv.metadata!.name }, "bound");
  }

  async function setClaimBound(pvc: PersistentVolumeClaim, pv: PersistentVolume): Promise<Result> {
    const st = pvc.status;
    const capacity = pv.spec!.capacity;
    if (st?.phase === "Bound" && st.capacity.storage === capacity.storage && st.accessModes.join() === pv.spec!.accessModes.join()) return;
    const next = structuredClone(pvc);
    next.status!.phase = "Bound";
    next.status!.capacity = { ...capacity };
    next.status!.accessModes = [...pv.spec!.accessModes];
    await claimApi.updateStatus(next);
  }

  async function setClaimPhase(pvc: PersistentVolumeClaim, phase: string): Promise<Result> {
    if (pvc.status?.phase === phase) return;
    const next = structuredClone(pvc);
    next.status!.phase = phase;
    await claimApi.updateStatus(next);
  }

  /** pvc-protection: the finalizer goes once no pod that may still run uses the claim. */
  async function releaseClaimFinalizer(pvc: PersistentVolumeClaim): Promise<Result> {
    const m = pvc.metadata!;
    if (!m.finalizers.includes(PVC_PROTECTION_FINALIZER)) return;
    const users = pods.list().filter((p) => p.metadata!.namespace === m.namespace && podClaimNames(p.spec).includes(m.name) && p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed");
    if (users.length > 0) {
      return event(pvc, "Normal", "WaitingForPods", `claim is in use by pod ${users.map((p) => p.metadata!.name).slice(0, 5).join(", ")}: it is removed once they are gone`);
    }
    const next = structuredClone(pvc);
    next.metadata!.finalizers = m.finalizers.filter((f) => f !== PVC_PROTECTION_FINALIZER);
    await claimApi.update(next).catch(ignoreGone);
  }

  // ---- volumes ----
  async function syncVolume(name: string): Promise<Result> {
    const pv = volumes.get(name);
    if (!pv) return;
    const ref = claimRefKey(pv);
    if (!ref) return setVolumePhase(pv, pv.metadata!.deletionTimestamp ? pv.status!.phase : "Available", pv.metadata!.deletionTimestamp !== undefined);
    const pvc = claims.get(ref);
    const uid = pv.spec!.claimRef!.uid;
    if (pvc && (uid === "" || uid === pvc.metadata!.uid)) {
      if (pvc.spec!.volumeName === name) return setVolumePhase(pv, "Bound", false);
      if (pvc.spec!.volumeName === "") return setVolumePhase(pv, "Available", pv.metadata!.deletionTimestamp !== undefined); // pre-bound, the claim's sync binds
      if (uid !== "") return unbind(pv); // the claim took another volume
      return setVolumePhase(pv, "Available", pv.metadata!.deletionTimestamp !== undefined);
    }
    if (uid === "") return setVolumePhase(pv, "Available", pv.metadata!.deletionTimestamp !== undefined); // waits for that claim to appear
    // Its claim is gone: Released, then the reclaim policy.
    if (pv.status?.phase !== "Released" && pv.status?.phase !== "Failed") {
      await volumeApi.updateStatus(withPhase(pv, "Released", "", "the claim is gone"));
      return;
    }
    if (pv.status.phase === "Failed") return releaseVolumeFinalizer(pv);
    if (pv.spec!.persistentVolumeReclaimPolicy === "Delete" && !pv.metadata!.deletionTimestamp) {
      if (!isLocalPath(pv)) {
        await volumeApi.updateStatus(withPhase(pv, "Failed", "VolumeFailedDelete", "reclaim policy Delete: this cluster deletes only the volumes it provisioned; remove the data and the volume by hand"));
        return;
      }
      await volumeApi.delete("", name, { uid: pv.metadata!.uid }).catch(ignoreGone);
      log.info({ volume: name }, "deleted (reclaim policy Delete); its node's agent removes the directory");
      return;
    }
    return releaseVolumeFinalizer(pv); // Retain: stays Released, never bound again
  }

  async function unbind(pv: PersistentVolume): Promise<Result> {
    const next = structuredClone(pv);
    next.spec!.claimRef = undefined;
    const stored = await volumeApi.update(next);
    await volumeApi.updateStatus(withPhase(stored, "Available"));
  }

  async function setVolumePhase(pv: PersistentVolume, phase: string, deleting: boolean): Promise<Result> {
    if (pv.status?.phase !== phase) pv = await volumeApi.updateStatus(withPhase(pv, phase));
    if (deleting) return releaseVolumeFinalizer(pv);
  }

  /** pv-protection: the finalizer goes once no claim is bound to the volume. */
  async function releaseVolumeFinalizer(pv: PersistentVolume): Promise<Result> {
    const m = pv.metadata!;
    if (!m.deletionTimestamp || !m.finalizers.includes(PV_PROTECTION_FINALIZER) || pv.status?.phase === "Bound") return;
    const next = structuredClone(pv);
    next.metadata!.finalizers = m.finalizers.filter((f) => f !== PV_PROTECTION_FINALIZER);
    await volumeApi.update(next).catch(ignoreGone);
  }

  function withPhase(pv: PersistentVolume, phase: string, reason = "", message = ""): PersistentVolume {
    const next = structuredClone(pv);
    next.status!.phase = phase;
    next.status!.reason = reason;
    next.status!.message = message;
    return next;
  }

  function event(pvc: PersistentVolumeClaim, type: "Normal" | "Warning", reason: string, message: string): Result {
    ctx.recorder.event(pvc, type, reason, message);
  }

  /** The built-in class is made at every start unless it exists (as k3s re-applies its manifests). */
  async function ensureLocalPathClass(): Promise<void> {
    if (classes.get(LOCAL_PATH_CLASS)) return;
    try {
      await classApi.create(localPathClass());
      log.info("created the default StorageClass local-path");
    } catch (err) {
      if (ConnectError.from(err).code !== Code.AlreadyExists) log.warn({ err: String(err) }, "could not create the local-path StorageClass");
    }
  }

  return {
    ...controller,
    run(workers) {
      controller.run(workers ?? 1);
      void ensureLocalPathClass();
    },
    async stop() {
      offVolumeAdds();
      await controller.stop();
    },
  };
}
