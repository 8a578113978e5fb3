// From a pod's container spec to the runtime's ContainerConfig: environment (literal values and
// the pod's own fields), $(VAR) expansion, cgroup resources, volume mounts and the log path.
// Pure: the caller has prepared volumes and /etc files.
import type { Container, EnvVar, Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { quantityToBytes, quantityToMilli } from "../api/quantity.ts";
import type { ContainerConfig, ContainerResources, Mount } from "../runtime/runtime.ts";
import { logPath, podHostname } from "./pod-files.ts";
import { containerSecurity, type SecurityOptions } from "./security.ts";
import { metadataFieldValue, resourceFieldValue } from "./volumes/downward.ts";
import type { VolumePath } from "./volumes/index.ts";
import { pinSubPath, resolveSubPath } from "./volumes/subpath.ts";
import { terminationLogPath, terminationMount } from "./termination-message.ts";

/** A container cannot be configured (Kubernetes' CreateContainerConfigError). */
export class ContainerConfigError extends Error {
  override name = "ContainerConfigError";
}

export interface ConfigContext {
  rootDir: string;
  nodeName: string;
  hostIP: string;
  podIP: string;
  netnsPath: string;
  /** The pod's prepared volumes, by volume name (volumes/index.ts). */
  volumes: Map<string, VolumePath>;
  /** The node's allocatable resources: resourceFieldRef limits of containers that set none. */
  nodeAllocatable?: Record<string, string>;
  /** Where subPath mounts are pinned (volumes/subpath.ts pinSubPath); absent: mounted by path (hollow nodes). */
  subPathDir?: string;
  /** /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  etcMounts: Mount[];
  /** The ConfigMaps and Secrets the pod's env refers to, by name (absent = not found). */
  configMaps: Map<string, Record<string, string>>;
  secrets: Map<string, Record<string, string>>;
  /** Service variables (service-env.ts); anything the container sets itself wins. */
  serviceEnv?: { name: string; value: string }[];
  /** seccomp defaults of this node; absent: Unconfined, Localhost profiles under <rootDir>/seccomp. */
  security?: SecurityOptions;
}

/** Names of the ConfigMaps and Secrets a container's environment reads. */
export function envReferences(c: Container): { configMaps: string[]; secrets: string[] } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  for (const e of c.env) {
    if (e.valueFrom?.configMapKeyRef) configMaps.add(e.valueFrom.configMapKeyRef.name);
    if (e.valueFrom?.secretKeyRef) secrets.add(e.valueFrom.secretKeyRef.name);
  }
  for (const f of c.envFrom) {
    if (f.configMapRef) configMaps.add(f.configMapRef.name);
    if (f.secretRef) secrets.add(f.secretRef.name);
  }
  return { configMaps: [...configMaps], secrets: [...secrets] };
}

function keyRef(kind: "configmap" | "secret", data: Map<string, Record<string, string>>, ns: string, ref: { name: string; key: string; optional?: boolean }): string | undefined {
  const obj = data.get(ref.name);
  if (!obj) {
    if (ref.optional) return undefined;
    throw new ContainerConfigError(`${kind} "${ref.name}" not found`);
  }
  if (!(ref.key in obj)) {
    if (ref.optional) return undefined;
    throw new ContainerConfigError(`couldn't find key ${ref.key} in ${kind === "configmap" ? "ConfigMap" : "Secret"} ${ns}/${ref.name}`);
  }
  return obj[ref.key];
}

const MIN_SHARES = 2;
const CFS_PERIOD_US = 100_000;
const MIN_QUOTA_US = 1_000;

/** Kubernetes' mapping of requests/limits to cgroup settings. */
export function containerResources(c: Container): ContainerResources {
  const requests = c.resources?.requests ?? {};
  const limits = c.resources?.limits ?? {};
  const out: ContainerResources = {};
  // A limit without a request means request = limit.
  const cpuRequest = requests.cpu ?? limits.cpu;
  out.cpuShares = cpuRequest ? Math.max(MIN_SHARES, Number((quantityToMilli(cpuRequest) * 1024n) / 1000n)) : MIN_SHARES;
  if (limits.cpu) {
    out.cpuPeriodUs = CFS_PERIOD_US;
    out.cpuQuotaUs = Math.max(MIN_QUOTA_US, Number((quantityToMilli(limits.cpu) * BigInt(CFS_PERIOD_US)) / 1000n));
  }
  if (limits.memory) out.memoryLimitBytes = Number(quantityToBytes(limits.memory));
  return out;
}

/** The value of a fieldRef; throws for a field path this agent does not provide. */
export function podFieldValue(pod: Pod, fieldPath: string, ctx: Pick<ConfigContext, "nodeName" | "hostIP" | "podIP">): string {
  const meta = metadataFieldValue(pod, fieldPath);
  if (meta !== undefined) return meta;
  switch (fieldPath) {
    case "spec.nodeName":
      return pod.spec?.nodeName || ctx.nodeName;
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "";
    case "status.podIP":
    case "status.podIPs":
      return ctx.podIP;
    case "status.hostIP":
    case "status.hostIPs":
      return ctx.hostIP;
  }
  throw new ContainerConfigError(`unsupported fieldRef "${fieldPath}"`);
}

/**
 * Kubernetes' $(VAR) expansion: a reference to a defined variable is replaced, "$$" is a
 * literal "$", anything else is left as written.
 */
export function expandVars(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return "$";
    return vars.has(name) ? vars.get(name)! : match;
  });
}

function envValue(pod: Pod, c: Container, e: EnvVar, vars: Map<string, string>, ctx: ConfigContext): string | undefined {
  const from = e.valueFrom;
  if (!from) return expandVars(e.value, vars);
  if (from.fieldRef) return podFieldValue(pod, from.fieldRef.fieldPath, ctx);
  const ns = pod.metadata!.namespace;
  if (from.configMapKeyRef) return keyRef("configmap", ctx.configMaps, ns, from.configMapKeyRef);
  if (from.secretKeyRef) return keyRef("secret", ctx.secrets, ns, from.secretKeyRef);
  if (from.resourceFieldRef) {
    try {
      return resourceFieldValue(pod, from.resourceFieldRef, ctx.nodeAllocatable ?? {}, c.name);
    } catch (err) {
      throw new ContainerConfigError(`container "${c.name}" env ${e.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new ContainerConfigError(`container "${c.name}" env ${e.name}: valueFrom names no source`);
}

export function containerEnv(pod: Pod, c: Container, ctx: ConfigContext): { name: string; value: string }[] {
  const vars = new Map<string, string>();
  const out: { name: string; value: string }[] = [];
  const set = (name: string, value: string) => {
    vars.set(name, value);
    const i = out.findIndex((x) => x.name === name);
    if (i >= 0) out[i] = { name, value };
    else out.push({ name, value });
  };
  // Service variables first (they can be referred to as $(VAR)), then envFrom, then explicit env
  // entries, each overriding the ones before, as in Kubernetes.
  for (const e of ctx.serviceEnv ?? []) set(e.name, e.value);
  for (const f of c.envFrom) {
    const ref = f.configMapRef ?? f.secretRef;
    if (!ref) continue;
    const source = f.configMapRef ? ctx.configMaps : ctx.secrets;
    const data = source.get(ref.name);
    if (!data) {
      if (ref.optional) continue;
      throw new ContainerConfigError(`${f.configMapRef ? "configmap" : "secret"} "${ref.name}" not found`);
    }
    for (const [k, v] of Object.entries(data)) set(f.prefix + k, v);
  }
  for (const e of c.env) {
    const value = envValue(pod, c, e, vars, ctx);
    if (value === undefined) continue; // optional reference that is absent
    set(e.name, value);
  }
  return out;
}

/**
 * The container's mounts: its volumeMounts (a subPath, or a subPathExpr expanded from `env`,
 * resolved inside the volume), then the pod's /etc files unless it mounts something there.
 */
export function containerMounts(c: Container, ctx: ConfigContext, env: Map<string, string> = new Map()): Mount[] {
  const mounts: Mount[] = [];
  for (const [i, vm] of c.volumeMounts.entries()) {
    const vol = ctx.volumes.get(vm.name);
    if (vol === undefined) throw new ContainerConfigError(`container "${c.name}": volumeMount "${vm.name}" names no volume of the pod`);
    const sub = vm.subPathExpr ? expandVars(vm.subPathExpr, env) : vm.subPath;
    let hostPath = vol.hostPath;
    if (sub) {
      try {
        hostPath = resolveSubPath(vol.hostPath, sub);
        if (ctx.subPathDir) hostPath = pinSubPath(vol.hostPath, hostPath, `${ctx.subPathDir}/${c.name}/${i}`);
      } catch (err) {
        throw new ContainerConfigError(`container "${c.name}": volumeMount "${vm.name}": ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    mounts.push({ hostPath, containerPath: vm.mountPath, readOnly: vm.readOnly || vol.readOnly });
  }
  // The pod's /etc files, unless the container mounts something of its own there.
  for (const m of ctx.etcMounts) if (!mounts.some((x) => x.containerPath === m.containerPath)) mounts.push(m);
  return mounts;
}

export function buildContainerConfig(pod: Pod, c: Container, attempt: number, ctx: ConfigContext): ContainerConfig {
  const m = pod.metadata!;
  const env = containerEnv(pod, c, ctx);
  const vars = new Map(env.map((e) => [e.name, e.value]));
  return {
    podUid: m.uid,
    podName: m.name,
    podNamespace: m.namespace,
    containerName: c.name,
    attempt,
    image: c.image,
    command: c.command.map((s) => expandVars(s, vars)),
    args: c.args.map((s) => expandVars(s, vars)),
    env,
    workingDir: c.workingDir,
    mounts: [...containerMounts(c, ctx, vars), terminationMount(c, terminationLogPath(ctx.rootDir, m.uid, c.name, attempt))],
    resources: containerResources(c),
    netnsPath: ctx.netnsPath,
    hostname: podHostname(pod),
    logPath: logPath(ctx.rootDir, m.uid, c.name, attempt),
    tty: c.tty,
    security: containerSecurity(pod, c, ctx.security ?? { seccompDefault: false, seccompProfileRoot: `${ctx.rootDir}/seccomp` }),
  };
}
