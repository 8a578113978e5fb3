// Creates the default policy at apiserver start and reconciles it like kube-apiserver: a missing
// default object is created; an existing one gets back any default rule or subject it lost,
// keeps what an operator added, and is left alone when annotated autoupdate: "false".
import { equals } from "@bufbuild/protobuf";
import { cloneMessage } from "../../api/codec/index.ts";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { PolicyRuleSchema, SubjectSchema, type ClusterRole, type ClusterRoleBinding } from "../../../gen/skiff/v1alpha1/rbac_pb.js";
import type { ApiObject } from "../../api/registry.ts";
import type { ResourceOps } from "../../apiserver/resources.ts";
import { AUTOUPDATE_ANNOTATION, defaultClusterRoleBindings, defaultClusterRoles } from "./policy.ts";

export interface BootstrapResult {
  created: string[];
  updated: string[];
  /** The newest revision written per kind ("ClusterRole"), for waiting until the caches have it. */
  written: Record<string, number>;
}

/** Makes the default ClusterRoles and ClusterRoleBindings exist and be complete. Idempotent. */
export async function bootstrapPolicy(ops: Map<string, ResourceOps>, log?: Logger): Promise<BootstrapResult> {
  const result: BootstrapResult = { created: [], updated: [], written: {} };
  const roleOps = ops.get("ClusterRole")!;
  const bindingOps = ops.get("ClusterRoleBinding")!;
  for (const want of defaultClusterRoles()) {
    await reconcile(roleOps, want as ApiObject, result, (cur, w) => {
      const c = cur as ClusterRole;
      const missing = (w as ClusterRole).rules.filter((r) => !c.rules.some((have) => equals(PolicyRuleSchema, have, r)));
      c.rules.push(...missing);
      return missing.length > 0;
    });
  }
  for (const want of defaultClusterRoleBindings()) {
    await reconcile(bindingOps, want as ApiObject, result, (cur, w) => {
      const c = cur as ClusterRoleBinding;
      const wb = w as ClusterRoleBinding;
      if (c.roleRef?.name !== wb.roleRef?.name || c.roleRef?.kind !== wb.roleRef?.kind) {
        log?.warn({ binding: c.metadata?.name, roleRef: c.roleRef?.name }, "default ClusterRoleBinding points at another role; leaving it (delete it to restore the default)");
        return false;
      }
      const missing = wb.subjects.filter((s) => !c.subjects.some((have) => equals(SubjectSchema, have, s)));
      c.subjects.push(...missing);
      return missing.length > 0;
    });
  }
  if (result.created.length + result.updated.length > 0) log?.info({ created: result.created, updated: result.updated }, "reconciled the default RBAC policy");
  return result;
}

async function reconcile(ops: ResourceOps, want: ApiObject, result: BootstrapResult, merge: (cur: ApiObject, want: ApiObject) => boolean): Promise<void> {
  const name = want.metadata!.name;
  const label = `${ops.kind.kind}/${name}`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let cur: ApiObject;
    try {
      cur = cloneMessage(ops.kind.schema, await ops.get("", name)) as ApiObject;
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
      try {
        note(result, ops, await ops.create(want));
        result.created.push(label);
        return;
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.AlreadyExists) continue;
        throw e;
      }
    }
    if (cur.metadata?.annotations[AUTOUPDATE_ANNOTATION] === "false") return;
    if (!merge(cur, want)) return;
    try {
      note(result, ops, await ops.update(cur));
      result.updated.push(label);
      return;
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.Aborted) continue;
      throw e;
    }
  }
  throw new ConnectError(`could not reconcile ${label}: it kept changing`, Code.Aborted);
}

function note(result: BootstrapResult, ops: ResourceOps, stored: ApiObject): void {
  const k = ops.kind.kind;
  result.written[k] = Math.max(result.written[k] ?? 0, Number(stored.metadata?.resourceVersion ?? 0));
}

/**
 * Resolves once each watch cache has seen what bootstrapPolicy wrote (the authorizer reads the
 * caches), or after timeoutMs with a warning: a cache that lags that much is a storage problem
 * the apiserver reports elsewhere, and starting beats hanging.
 */
export async function policyVisible(result: BootstrapResult, caches: Map<string, { revision(): number }>, log?: Logger, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const [kind, revision] of Object.entries(result.written)) {
    const cache = caches.get(kind);
    while (cache && cache.revision() < revision) {
      if (Date.now() > deadline) return void log?.warn({ kind, revision, cached: cache.revision() }, "the default RBAC policy is not in the watch cache yet; starting anyway");
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
