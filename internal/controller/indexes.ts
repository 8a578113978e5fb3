// Informer indexes shared by the controllers of one manager. The informers are shared, and every
// index costs an index-function call on every add and update of its kind, so two controllers that
// need the same lookup use one index under one name.
import type { ApiObject } from "../api/registry.ts";
import type { IndexFunc, Informer } from "../client/informer.ts";

/**
 * Objects by controller (owner reference with controller=true): `controlledBy(uid)`, or
 * `orphansIn(namespace)` for those without one — so a ReplicaSet's sync reads its own pods and
 * the orphans it may adopt, and a Deployment its ReplicaSet's pods, not the whole namespace
 * (Kubernetes' controller-UID index).
 */
export const CONTROLLER_INDEX = "controller";
export const controlledBy = (uid: string) => `uid:${uid}`;
export const orphansIn = (namespace: string) => `orphan:${namespace}`;
export const controllerIndexFunc: IndexFunc<ApiObject> = (obj) => {
  const ref = obj.metadata?.ownerReferences.find((r) => r.controller === true);
  return [ref ? controlledBy(ref.uid) : orphansIn(obj.metadata?.namespace ?? "")];
};

/** Adds an index unless the (shared) informer has one by that name already. */
export function ensureIndex<T extends ApiObject>(inf: Informer<T>, name: string, fn: IndexFunc<T>): void {
  try {
    inf.indexKeys(name, "");
  } catch {
    inf.addIndexers({ [name]: fn });
  }
}
