// What a pod owns on the node's disk, all under <rootDir>/pods/<uid>/:
//   etc-hosts, etc-hostname, etc-resolv.conf   bind-mounted over /etc/hosts, /etc/hostname, /etc/resolv.conf
//   volumes/<name>/                            emptyDir volumes
//   logs/<container>/<attempt>.log             each container instance's stdout+stderr
// Removing the pod directory removes all of it.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Mount } from "../runtime/runtime.ts";

export function podDir(rootDir: string, uid: string): string {
  return join(rootDir, "pods", uid);
}

export function volumeDir(rootDir: string, uid: string, volume: string): string {
  return join(podDir(rootDir, uid), "volumes", volume);
}

export function logPath(rootDir: string, uid: string, container: string, attempt: number): string {
  return join(podDir(rootDir, uid), "logs", container, `${attempt}.log`);
}

/** The pod's hostname: spec.hostname, else its name (at most 63 characters, like Kubernetes). */
export function podHostname(pod: Pod): string {
  return (pod.spec?.hostname || pod.metadata!.name).slice(0, 63);
}

export function hostsFile(pod: Pod, podIP: string): string {
  const hostname = podHostname(pod);
  const spec = pod.spec!;
  // With a subdomain the pod is also reachable as <hostname>.<subdomain>.<namespace>.svc.<domain>.
  const fqdn = spec.subdomain ? `${hostname}.${spec.subdomain}.${pod.metadata!.namespace}.svc.cluster.local\t` : "";
  const lines = [
    "# Skiff-managed hosts file.",
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "fe00::0\tip6-mcastprefix",
    "fe00::1\tip6-allnodes",
    "fe00::2\tip6-allrouters",
  ];
  if (podIP) lines.push(`${podIP}\t${fqdn}${hostname}`);
  if (spec.hostAliases.length > 0) {
    lines.push("", "# Entries added by HostAliases.");
    for (const a of spec.hostAliases) lines.push(`${a.ip}\t${a.hostnames.join("\t")}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The pod's resolv.conf. For now every pod gets a copy of the node's: cluster DNS (ClusterFirst
 * with a nameserver Service and search domains) arrives with the DNS issue and changes only this.
 */
export async function resolvConf(_pod: Pod, hostResolvConfPath: string): Promise<string> {
  try {
    return await readFile(hostResolvConfPath, "utf8");
  } catch {
    return "";
  }
}

/** Writes the pod's /etc files and returns their bind mounts. */
export async function writeEtcFiles(rootDir: string, pod: Pod, podIP: string, hostResolvConfPath: string): Promise<Mount[]> {
  const dir = podDir(rootDir, pod.metadata!.uid);
  await mkdir(dir, { recursive: true });
  const files: [string, string, string][] = [
    ["etc-hosts", "/etc/hosts", hostsFile(pod, podIP)],
    ["etc-hostname", "/etc/hostname", `${podHostname(pod)}\n`],
    ["etc-resolv.conf", "/etc/resolv.conf", await resolvConf(pod, hostResolvConfPath)],
  ];
  const mounts: Mount[] = [];
  for (const [file, containerPath, text] of files) {
    const path = join(dir, file);
    await writeIfChanged(path, text);
    mounts.push({ hostPath: path, containerPath, readOnly: false });
  }
  return mounts;
}

async function writeIfChanged(path: string, text: string): Promise<void> {
  const old = await readFile(path, "utf8").catch(() => undefined);
  if (old !== text) await writeFile(path, text, { mode: 0o644 });
}

export class VolumeError extends Error {
  override name = "VolumeError";
}

/**
 * Prepares every volume of the pod and returns the host path of each by name. emptyDir and
 * hostPath are supported; other sources fail with a VolumeError naming them.
 */
export async function prepareVolumes(rootDir: string, pod: Pod): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  for (const v of pod.spec?.volumes ?? []) {
    if (v.emptyDir) {
      const dir = volumeDir(rootDir, pod.metadata!.uid, v.name);
      await mkdir(dir, { recursive: true, mode: 0o777 });
      paths.set(v.name, dir);
    } else if (v.hostPath) {
      if (v.hostPath.type === "DirectoryOrCreate") await mkdir(v.hostPath.path, { recursive: true });
      paths.set(v.name, v.hostPath.path);
    } else {
      const source = v.configMap ? "configMap" : v.secret ? "secret" : v.persistentVolumeClaim ? "persistentVolumeClaim" : "unknown";
      throw new VolumeError(`volume "${v.name}": ${source} volumes are not supported by this agent yet`);
    }
  }
  return paths;
}

export async function removePodDir(rootDir: string, uid: string): Promise<void> {
  await rm(podDir(rootDir, uid), { recursive: true, force: true });
}
