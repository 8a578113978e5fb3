// The Pod Security Standards (privileged, baseline, restricted) as checks over a pod spec, and
// the namespace labels that choose a level. Each check names what it forbids and, per offending
// pod or container, what to change — the shape of Kubernetes' PodSecurity messages, so its
// documentation reads across. Pure: the admission hook (index.ts) brings the namespace.
import type { Container, PodSpec, PodSecurityContext, SecurityContext } from "../../../gen/skiff/v1alpha1/pod_pb.js";
import { bareCapability } from "../../api/security-context.ts";
import { volumeSources } from "../../api/volume-validation.ts";

export type Level = "privileged" | "baseline" | "restricted";
export const LEVELS: readonly Level[] = ["privileged", "baseline", "restricted"];

export const LABEL_PREFIX = "pod-security.kubernetes.io/";
/** Only `enforce` refuses pods; `warn` and `audit` are accepted (and checked) for manifests that set them. */
export const MODES = ["enforce", "warn", "audit"] as const;

/** One broken rule: e.g. `privileged` + `container "app" must not set securityContext.privileged=true`. */
export interface PodSecurityViolation {
  check: string;
  details: string[];
}

/** Capabilities a baseline pod may add: the container runtime's default set. */
const BASELINE_CAPABILITIES = new Set([
  "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
]);

/** Volume sources a restricted pod may use (of those this API has). */
const RESTRICTED_VOLUMES = new Set(["emptyDir", "configMap", "secret", "persistentVolumeClaim", "downwardAPI", "projected"]);

type Named = { name: string; sc: SecurityContext | undefined; c: Container };

const quoteList = (xs: string[]) => xs.map((x) => JSON.stringify(x)).join(", ");
const containersOf = (spec: PodSpec): Named[] =>
  [...spec.initContainers, ...spec.containers].map((c) => ({ name: c.name, sc: c.securityContext, c }));
const plural = (n: number, word: string) => `${word}${n === 1 ? "" : "s"}`;

/** "container "a"" / "containers "a", "b"" for a detail line. */
function who(names: string[]): string {
  return `${plural(names.length, "container")} ${quoteList(names)}`;
}

type Check = (spec: PodSpec, psc: PodSecurityContext | undefined, cs: Named[]) => PodSecurityViolation | undefined;

const baseline: Check[] = [
  function hostNamespaces(spec) {
    const set = [spec.hostNetwork && "hostNetwork=true", spec.hostPid && "hostPID=true", spec.hostIpc && "hostIPC=true"].filter(Boolean) as string[];
    return set.length ? { check: "host namespaces", details: [set.join(", ")] } : undefined;
  },
  function privileged(_s, _p, cs) {
    const bad = cs.filter((x) => x.sc?.privileged).map((x) => x.name);
    return bad.length ? { check: "privileged", details: [`${who(bad)} must not set securityContext.privileged=true`] } : undefined;
  },
  function addedCapabilities(_s, _p, cs) {
    const details = cs.flatMap((x) => {
      const extra = (x.sc?.capabilities?.add ?? []).filter((cap) => !BASELINE_CAPABILITIES.has(bareCapability(cap)));
      return extra.length ? [`container ${JSON.stringify(x.name)} must not include ${quoteList(extra)} in securityContext.capabilities.add`] : [];
    });
    return details.length ? { check: "non-default capabilities", details } : undefined;
  },
  function hostPathVolumes(spec) {
    const bad = spec.volumes.filter((v) => v.hostPath).map((v) => v.name);
    return bad.length ? { check: "hostPath volumes", details: [`${plural(bad.length, "volume")} ${quoteList(bad)}`] } : undefined;
  },
  function hostPorts(_s, _p, cs) {
    const details = cs.flatMap((x) => {
      const ports = x.c.ports.filter((p) => p.hostPort !== 0).map((p) => String(p.hostPort));
      return ports.length ? [`container ${JSON.stringify(x.name)} uses ${plural(ports.length, "hostPort")} ${ports.join(", ")}`] : [];
    });
    return details.length ? { check: "hostPort", details } : undefined;
  },
  function procMount(_s, _p, cs) {
    const bad = cs.filter((x) => x.sc && x.sc.procMount !== "" && x.sc.procMount !== "Default").map((x) => x.name);
    return bad.length ? { check: "procMount", details: [`${who(bad)} must not set securityContext.procMount`] } : undefined;
  },
  function seccompNotUnconfined(_s, psc, cs) {
    const details: string[] = [];
    if (psc?.seccompProfile?.type === "Unconfined") details.push('pod must not set securityContext.seccompProfile.type to "Unconfined"');
    const bad = cs.filter((x) => x.sc?.seccompProfile?.type === "Unconfined").map((x) => x.name);
    if (bad.length) details.push(`${who(bad)} must not set securityContext.seccompProfile.type to "Unconfined"`);
    return details.length ? { check: "seccompProfile", details } : undefined;
  },
  function sysctls(_s, psc) {
    const names = (psc?.sysctls ?? []).map((s) => s.name);
    return names.length ? { check: "forbidden sysctls", details: [names.join(", ")] } : undefined;
  },
];

const restricted: Check[] = [
  function volumeTypes(spec) {
    const details = spec.volumes.flatMap((v) => {
      const type = volumeSources(v)[0];
      return type && !RESTRICTED_VOLUMES.has(type) ? [`volume ${JSON.stringify(v.name)} uses restricted volume type ${JSON.stringify(type)}`] : [];
    });
    return details.length ? { check: "restricted volume types", details } : undefined;
  },
  function privilegeEscalation(_s, _p, cs) {
    const bad = cs.filter((x) => x.sc?.allowPrivilegeEscalation !== false).map((x) => x.name);
    return bad.length ? { check: "allowPrivilegeEscalation != false", details: [`${who(bad)} must set securityContext.allowPrivilegeEscalation=false`] } : undefined;
  },
  function runAsNonRoot(_s, psc, cs) {
    const explicitlyFalse = cs.filter((x) => x.sc?.runAsNonRoot === false).map((x) => x.name);
    const details: string[] = [];
    if (psc?.runAsNonRoot === false) details.push("pod must not set securityContext.runAsNonRoot=false");
    if (explicitlyFalse.length) details.push(`${who(explicitlyFalse)} must not set securityContext.runAsNonRoot=false`);
    if (psc?.runAsNonRoot !== true) {
      const unset = cs.filter((x) => x.sc?.runAsNonRoot === undefined).map((x) => x.name);
      if (unset.length) details.push(`pod or ${who(unset)} must set securityContext.runAsNonRoot=true`);
    }
    return details.length ? { check: "runAsNonRoot != true", details } : undefined;
  },
  function runAsUserNotRoot(_s, psc, cs) {
    const details: string[] = [];
    if (psc?.runAsUser === 0n) details.push("pod must not set runAsUser=0");
    const bad = cs.filter((x) => x.sc?.runAsUser === 0n).map((x) => x.name);
    if (bad.length) details.push(`${who(bad)} must not set runAsUser=0`);
    return details.length ? { check: "runAsUser=0", details } : undefined;
  },
  function seccompRequired(_s, psc, cs) {
    const ok = (t: string | undefined) => t === "RuntimeDefault" || t === "Localhost";
    if (ok(psc?.seccompProfile?.type)) return undefined; // (Unconfined per container is baseline's finding)
    const bad = cs.filter((x) => !ok(x.sc?.seccompProfile?.type) && x.sc?.seccompProfile?.type !== "Unconfined").map((x) => x.name);
    return bad.length ? { check: "seccompProfile", details: [`pod or ${who(bad)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`] } : undefined;
  },
  function capabilities(_s, _p, cs) {
    const details: string[] = [];
    const noDropAll = cs.filter((x) => !(x.sc?.capabilities?.drop ?? []).some((d) => bareCapability(d) === "ALL")).map((x) => x.name);
    if (noDropAll.length) details.push(`${who(noDropAll)} must set securityContext.capabilities.drop=["ALL"]`);
    for (const x of cs) {
      const extra = (x.sc?.capabilities?.add ?? []).filter((cap) => bareCapability(cap) !== "NET_BIND_SERVICE");
      if (extra.length) details.push(`container ${JSON.stringify(x.name)} must not include ${quoteList(extra)} in securityContext.capabilities.add`);
    }
    return details.length ? { check: "unrestricted capabilities", details } : undefined;
  },
];

/** Every rule of `level` the pod spec breaks (none for privileged). */
export function checkPod(level: Level, spec: PodSpec): PodSecurityViolation[] {
  if (level === "privileged") return [];
  const checks = level === "restricted" ? [...baseline, ...restricted] : baseline;
  const cs = containersOf(spec);
  const out: PodSecurityViolation[] = [];
  for (const check of checks) {
    const v = check(spec, spec.securityContext, cs);
    if (!v) continue;
    // The same check at both levels (seccomp) is reported once, its details merged.
    const same = out.find((o) => o.check === v.check);
    if (same) same.details.push(...v.details);
    else out.push(v);
  }
  return out;
}

/** Kubernetes' message: `violates PodSecurity "restricted:latest": check (details), check (details)`. */
export function formatViolations(level: Level, version: string, violations: PodSecurityViolation[]): string {
  const parts = violations.map((v) => `${v.check} (${v.details.join("; ")})`);
  return `violates PodSecurity "${level}:${version}": ${parts.join(", ")}`;
}

/** What a namespace's labels say: the enforced level and version. Invalid labels read as privileged (they cannot be stored). */
export function enforcedLevel(labels: Record<string, string> | undefined): { level: Level; version: string } {
  const level = labels?.[`${LABEL_PREFIX}enforce`];
  const version = labels?.[`${LABEL_PREFIX}enforce-version`] || "latest";
  return { level: LEVELS.includes(level as Level) ? (level as Level) : "privileged", version };
}

const VERSION = /^(latest|v1\.(0|[1-9]\d{0,2}))$/;

/** The pod-security labels of a namespace, checked: a level and a version per mode. */
export function validateNamespaceLabels(labels: Record<string, string>): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  for (const mode of MODES) {
    const levelKey = `${LABEL_PREFIX}${mode}`;
    const versionKey = `${levelKey}-version`;
    const level = labels[levelKey];
    if (level !== undefined && !LEVELS.includes(level as Level)) {
      out.push({ field: `metadata.labels[${levelKey}]`, message: `"${level}" must be one of privileged, baseline, restricted` });
    }
    const version = labels[versionKey];
    if (version !== undefined && !VERSION.test(version)) {
      out.push({ field: `metadata.labels[${versionKey}]`, message: `"${version}" must be "latest" or a version like "v1.30"` });
    }
  }
  return out;
}
