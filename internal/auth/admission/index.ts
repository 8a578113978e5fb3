// Admission hooks per kind, run by the apiserver after validation and before storage (the kind
// registry hands each entry its hook). Pod Security: a pod is refused when it breaks the level
// its namespace enforces (label pod-security.kubernetes.io/enforce); a namespace is refused when
// its pod-security labels are not ones Pod Security understands.
import { Code, ConnectError } from "@connectrpc/connect";
import type { AdmitHook } from "../../api/registry.ts";
import { checkPod, enforcedLevel, formatViolations, validateNamespaceLabels } from "./podsecurity.ts";
import { admitPersistentVolume, admitPersistentVolumeClaim } from "./storage.ts";

const admitPod: AdmitHook = async (pod, old, ctx) => {
  // A pod update may change only images, deadlines and tolerations (validation), none of which
  // Pod Security looks at: checking creates is checking every pod.
  if (old || !pod.spec) return;
  const ns = await ctx.namespace(pod.metadata?.namespace ?? "");
  const { level, version } = enforcedLevel(ns?.metadata?.labels);
  const violations = checkPod(level, pod.spec);
  if (violations.length === 0) return;
  const name = pod.metadata?.name || pod.metadata?.generateName || "";
  throw new ConnectError(`pods "${name}" is forbidden: ${formatViolations(level, version, violations)}`, Code.PermissionDenied);
};

const admitNamespace: AdmitHook = (ns) => {
  const v = validateNamespaceLabels(ns.metadata?.labels ?? {});
  if (v.length === 0) return;
  const lines = v.map((x) => `${x.field}: ${x.message}`).join("; ");
  throw new ConnectError(`namespace "${ns.metadata?.name ?? ""}" is invalid: ${lines}`, Code.InvalidArgument);
};

/** The admission hook of each kind that has one. */
export const admissionHooks: Record<string, AdmitHook> = {
  Pod: admitPod,
  Namespace: admitNamespace,
  PersistentVolumeClaim: admitPersistentVolumeClaim,
  PersistentVolume: admitPersistentVolume,
};
