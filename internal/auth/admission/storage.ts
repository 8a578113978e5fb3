// Admission of claims and volumes on create (Kubernetes' DefaultStorageClass and
// StorageObjectInUseProtection plugins): a claim naming no class gets the default one, and both
// kinds get the finalizer that keeps them while in use (the PV controller removes it).
import type { AdmitHook } from "../../api/registry.ts";
import { defaultClass, PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER } from "../../api/storage.ts";

const addFinalizer = (obj: any, f: string) => {
  if (!obj.metadata.finalizers.includes(f)) obj.metadata.finalizers.push(f);
};

export const admitPersistentVolumeClaim: AdmitHook = (pvc, old, ctx) => {
  if (old) return;
  addFinalizer(pvc, PVC_PROTECTION_FINALIZER);
  if (pvc.spec && pvc.spec.storageClassName === undefined) {
    const sc = defaultClass(ctx.objects("StorageClass") as any[]);
    if (sc) pvc.spec.storageClassName = sc.metadata!.name;
  }
};

export const admitPersistentVolume: AdmitHook = (pv, old) => {
  if (!old) addFinalizer(pv, PV_PROTECTION_FINALIZER);
};
