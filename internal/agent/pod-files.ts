// What a pod owns on the node's disk, all under <rootDir>/pods/<uid>/:
//   etc-hosts, etc-hostname, etc-resolv.conf   bind-mounted over /etc/hosts, /etc/hostname, /etc/resolv.conf
//   volumes/<name>/                            the pod's volumes (volumes/README.md), tmpfs for secrets
//   logs/<container>/<attempt>.log             each container instance's stdout+stderr
// Removing the pod directory removes all of it.
import * as fs from "node:fs";
import { promisify } from "node:util";
import { join } from "node:path";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Mount } from "../runtime/runtime.ts";
import { forgetAtomicDirs } from "./atomic-dir.ts";
import { allDone, andThen, asyncFileOps, fileOpsFor, onMemoryFs, type FileOps, type MaybePromise } from "./file-ops.ts";
import { unmountUnder } from "./volumes/tmpfs.ts";

export function podDir(rootDir: string, uid: string): string {
  return join(rootDir, "pods", uid);
}

export { volumeDir } from "./volumes/index.ts";

export function logPath(rootDir: string, uid: string, container: string, attempt: number): string {
  return join(podDir(rootDir, uid), "logs", container, `${attempt}.log`);
}

/** The pod's hostname: spec.hostname, else its name (at most 63 characters, like Kubernetes). */
export function podHostname(pod: Pod): string {
  return (pod.spec?.hostname || pod.metadata!.name).slice(0, 63);
}

export function hostsFile(pod: Pod, podIP: string, domain = "cluster.local"): string {
  const hostname = podHostname(pod);
  const spec = pod.spec!;
  // With a subdomain the pod is also reachable as <hostname>.<subdomain>.<namespace>.svc.<domain>.
  const fqdn = spec.subdomain ? `${hostname}.${spec.subdomain}.${pod.metadata!.namespace}.svc.${domain}\t` : "";
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

/** Where pods resolve cluster names: the node's DNS address and the cluster domain. */
export interface PodDnsSettings {
  nameserver: string;
  domain: string;
}

/** Lines of a resolv.conf: nameservers, search domains, options (later options override earlier ones). */
function formatResolvConf(nameservers: string[], searches: string[], options: Map<string, string | undefined>): string {
  const lines = nameservers.map((n) => `nameserver ${n}`);
  if (searches.length) lines.push(`search ${searches.join(" ")}`);
  if (options.size) lines.push(`options ${[...options].map(([k, v]) => (v === undefined ? k : `${k}:${v}`)).join(" ")}`);
  return lines.length ? `${lines.join("\n")}\n` : "";
}

function parseResolvConf(text: string): { nameservers: string[]; searches: string[]; options: Map<string, string | undefined> } {
  const out = { nameservers: [] as string[], searches: [] as string[], options: new Map<string, string | undefined>() };
  for (const line of text.split("\n")) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key === "nameserver" && rest[0]) out.nameservers.push(rest[0]);
    else if (key === "search" || key === "domain") out.searches = rest;
    else if (key === "options") {
      for (const o of rest) {
        const i = o.indexOf(":");
        out.options.set(i < 0 ? o : o.slice(0, i), i < 0 ? undefined : o.slice(i + 1));
      }
    }
  }
  return out;
}

// The node's resolv.conf, read at most every few seconds (every pod sync needs it).
const readFile = promisify(fs.readFile);
const hostResolv = new Map<string, { text: Promise<string>; at: number }>();
function hostResolvConf(path: string): Promise<string> {
  const hit = hostResolv.get(path);
  if (hit && Date.now() - hit.at < 5000) return hit.text;
  const text = readFile(path, "utf8").catch(() => "");
  hostResolv.set(path, { text, at: Date.now() });
  return text;
}

/**
 * The pod's resolv.conf, by its dnsPolicy (as the kubelet writes it):
 * - ClusterFirst (default): the cluster DNS, search <ns>.svc.<domain> svc.<domain> <domain>,
 *   ndots:5; hostNetwork pods fall back to Default (ClusterFirstWithHostNet keeps cluster DNS);
 * - Default: the node's own resolv.conf;
 * - None: only spec.dnsConfig.
 * spec.dnsConfig's nameservers, searches and options are added to any of them. Without cluster DNS
 * settings (no node DNS), ClusterFirst also means the node's resolv.conf.
 */
export async function resolvConf(pod: Pod, hostResolvConfPath: string, dns?: PodDnsSettings): Promise<string> {
  const spec = pod.spec!;
  const policy = spec.dnsPolicy || "ClusterFirst";
  const cluster = dns && (policy === "ClusterFirstWithHostNet" || (policy === "ClusterFirst" && !spec.hostNetwork));
  let base: ReturnType<typeof parseResolvConf>;
  if (policy === "None") base = { nameservers: [], searches: [], options: new Map() };
  else if (cluster) {
    const ns = pod.metadata!.namespace;
    base = { nameservers: [dns.nameserver], searches: [`${ns}.svc.${dns.domain}`, `svc.${dns.domain}`, dns.domain], options: new Map([["ndots", "5"]]) };
  } else {
    const text = await hostResolvConf(hostResolvConfPath);
    if (!spec.dnsConfig) return text;
    base = parseResolvConf(text);
  }
  const cfg = spec.dnsConfig;
  if (cfg) {
    base.nameservers = [...new Set([...base.nameservers, ...cfg.nameservers])];
    base.searches = [...new Set([...base.searches, ...cfg.searches])];
    for (const o of cfg.options) base.options.set(o.name, o.value);
  }
  return formatResolvConf(base.nameservers, base.searches, base.options);
}

/** Writes the pod's /etc files and returns their bind mounts. */
export async function writeEtcFiles(rootDir: string, pod: Pod, podIP: string, hostResolvConfPath: string, dns?: PodDnsSettings): Promise<Mount[]> {
  const dir = podDir(rootDir, pod.metadata!.uid);
  const files: [string, string, string][] = [
    ["etc-hosts", "/etc/hosts", hostsFile(pod, podIP, dns?.domain)],
    ["etc-hostname", "/etc/hostname", `${podHostname(pod)}\n`],
    ["etc-resolv.conf", "/etc/resolv.conf", await resolvConf(pod, hostResolvConfPath, dns)],
  ];
  // A few hundred bytes (host aliases and dnsConfig are bounded by validation): synchronous calls
  // on a memory file system (file-ops.ts).
  const ops = fileOpsFor(onMemoryFs(rootDir), files.reduce((n, f) => n + f[2].length, 0));
  // A directory this call created holds no files yet: nothing to compare with.
  const fresh = !knownDirs.has(dir) && (await ops.mkdir(dir, { recursive: true })) !== undefined;
  knownDirs.add(dir);
  // The three at once through the thread pool (a pod's sync would wait for each file's round
  // trips in turn); one after another, without a promise each, when the calls are synchronous.
  const mounts: Mount[] = [];
  const writes: MaybePromise<void>[] = [];
  for (const [file, containerPath, text] of files) {
    const path = `${dir}/${file}`;
    writes.push(writeIfChanged(ops, path, text, fresh));
    mounts.push({ hostPath: path, containerPath, readOnly: false });
  }
  await allDone(writes);
  return mounts;
}

// What this process last wrote to each pod file, and the pod directories it made or found, so
// that a sync changing nothing touches no disk (a node resyncs every pod every period).
const lastWritten = new Map<string, string>();
const ETC_FILES = ["etc-hosts", "etc-hostname", "etc-resolv.conf"];
const knownDirs = new Set<string>();

function writeIfChanged(ops: FileOps, path: string, text: string, fresh: boolean): MaybePromise<void> {
  if (lastWritten.get(path) === text) return undefined;
  const write = () => andThen(ops.writeFile(path, text, { mode: 0o644 }), () => void lastWritten.set(path, text));
  if (fresh) return write();
  // Not made by this call (an agent restart, a directory a volume made first): the file is
  // rewritten only if it differs, for a container reading it meanwhile would see it empty.
  return andThen(ops.readFileIfExists(path), (old) => (old === text ? void lastWritten.set(path, text) : write()));
}

export async function removePodDir(rootDir: string, uid: string): Promise<void> {
  const dir = podDir(rootDir, uid);
  knownDirs.delete(dir);
  for (const file of ETC_FILES) lastWritten.delete(join(dir, file));
  forgetAtomicDirs(dir);
  // tmpfs volumes (secrets, emptyDir Memory) first: rm cannot remove a mount point.
  await unmountUnder(dir);
  // Through the thread pool even on a memory file system: the directory holds the pod's logs
  // and emptyDir volumes, of any size (file-ops.ts).
  await asyncFileOps.rm(dir, { recursive: true, force: true });
}
