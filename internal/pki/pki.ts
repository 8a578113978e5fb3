// The cluster's PKI on disk, like kubeadm's /etc/kubernetes/pki: one CA, the apiserver's serving
// certificate, a client certificate per identity, etcd's serving certificate and the
// ServiceAccount signing key. ensurePki() creates what is missing and renews leaf certificates
// that are close to expiring or no longer match (new CA, new SANs); it is safe to run at every start.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { DEFAULT_SERVICE_CIDR, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { formatIPv4 } from "../util/ipv4.ts";
import { createCa, createSigningKeyPair, daysLeft, issueCert, signedBy, type CertKeyPair, type CertSpec } from "./certs.ts";

/** Leaf certificates with fewer days left than this are renewed at start. */
export const RENEW_BEFORE_DAYS = 90;

export interface PkiOptions {
  /** Nodes that get a `system:node:<name>` client certificate and their agent's serving certificate (node-<name>-serving). */
  nodeNames?: string[];
  /** The machine's addresses for the serving certificate. Default: every non-loopback address. */
  nodeAddresses?: string[];
  /** The Service range: its first address (the `kubernetes` Service) goes into the serving certificate. */
  serviceCidr?: string;
  /** More DNS names / IPs for the serving certificate (`--tls-san`). */
  extraSans?: string[];
  /** Called for each file created or renewed (for logs). */
  onWrite?(file: string, why: string): void;
  /**
   * This machine runs a member of a multi-machine etcd (`skiff server`): etcd gets its own CA
   * (etcd-ca, kept when present: joining servers receive it) signing the member's certificate
   * (etcd-member: serving and peer, loopback and these addresses) and the apiserver's client
   * certificate toward etcd (etcd-client). A certificate of the cluster CA, which every node
   * holds one of, opens neither etcd's client nor its peer port.
   */
  etcdMember?: { addresses: string[] };
}

/** One identity's files. */
export interface PkiFiles {
  cert: string;
  key: string;
}

export interface ClusterPki {
  dir: string;
  ca: CertKeyPair;
  /** The apiserver's serving certificate. */
  apiserver: CertKeyPair;
  /** `system:apiserver`: the apiserver's client certificate toward etcd and node agents. */
  apiserverClient: CertKeyPair;
  /** etcd's serving certificate (loopback). */
  etcdServer: CertKeyPair;
  admin: CertKeyPair;
  scheduler: CertKeyPair;
  controllerManager: CertKeyPair;
  nodes: Record<string, CertKeyPair>;
  /** Each node agent's serving certificate for its port (SANs: the node's name, the machine's addresses, loopback). */
  nodeServing: Record<string, CertKeyPair>;
  /** ServiceAccount token signing key pair (PEM): sa.key / sa.pub. */
  serviceAccountKey: { privateKey: string; publicKey: string };
  /** With etcdMember: etcd's own CA, the member's certificate and the apiserver's etcd client certificate. */
  etcd?: { ca: CertKeyPair; member: CertKeyPair; client: CertKeyPair };
  /** Paths of an identity's files by its base name ("admin", "node-worker-1", …). */
  files(name: string): PkiFiles;
}

const LOOPBACK_SANS = ["127.0.0.1", "::1", "localhost"];

export async function ensurePki(dir: string, opts: PkiOptions = {}): Promise<ClusterPki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = (name: string): PkiFiles => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  const note = opts.onWrite ?? (() => {});

  async function ensureCa(name: string, commonName: string): Promise<CertKeyPair> {
    const have = read(files(name));
    if (have) return have;
    if (existsSync(files(name).cert)) throw new Error(`${files(name).cert} exists but its key ${files(name).key} does not: restore the key or remove both to make a new CA`);
    const made = await createCa(commonName);
    write(files(name), made);
    note(files(name).cert, "created");
    return made;
  }
  const caPair = await ensureCa("ca", "skiff-ca");

  async function leaf(name: string, spec: CertSpec, signer = caPair): Promise<CertKeyPair> {
    const f = files(name);
    const have = read(f);
    const why = !have ? "created" : staleReason(have, signer, spec);
    if (!why) return have!;
    const pair = await issueCert(signer, spec);
    write(f, pair);
    note(f.cert, why);
    return pair;
  }

  const serviceIp = formatIPv4(parseServiceCidr(opts.serviceCidr ?? DEFAULT_SERVICE_CIDR).first);
  const servingSans = unique([...LOOPBACK_SANS, "kubernetes", "kubernetes.default", "kubernetes.default.svc", serviceIp, ...(opts.nodeAddresses ?? machineAddresses()), ...(opts.extraSans ?? [])]);
  const nodes: Record<string, CertKeyPair> = {};
  const nodeServing: Record<string, CertKeyPair> = {};
  for (const n of opts.nodeNames ?? []) {
    nodes[n] = await leaf(`node-${n}`, { commonName: `system:node:${n}`, organizations: ["system:nodes"], usage: "client" });
    // The apiserver dials the agent at the Node's InternalIP (PodService.Log): the node's addresses go in.
    nodeServing[n] = await leaf(`node-${n}-serving`, { commonName: `system:node:${n}`, sans: nodeServingSans(n, opts.nodeAddresses ?? machineAddresses()), usage: "server" });
  }

  const saFiles = { key: join(dir, "sa.key"), pub: join(dir, "sa.pub") };
  if (!existsSync(saFiles.key) || !existsSync(saFiles.pub)) {
    const kp = createSigningKeyPair();
    writeSecret(saFiles.key, kp.privateKey);
    writeFileSync(saFiles.pub, kp.publicKey, { mode: 0o644 });
    note(saFiles.key, "created");
  }

  let etcd: ClusterPki["etcd"];
  if (opts.etcdMember) {
    const etcdCa = await ensureCa("etcd-ca", "skiff-etcd-ca");
    etcd = {
      ca: etcdCa,
      member: await leaf("etcd-member", { commonName: "etcd-member", sans: unique([...LOOPBACK_SANS, ...opts.etcdMember.addresses]), usage: "server-and-client" }, etcdCa),
      client: await leaf("etcd-client", { commonName: "system:apiserver", usage: "client" }, etcdCa),
    };
  }

  return {
    dir,
    ca: caPair,
    etcd,
    apiserver: await leaf("apiserver", { commonName: "skiff-apiserver", sans: servingSans, usage: "server" }),
    apiserverClient: await leaf("apiserver-client", { commonName: "system:apiserver", organizations: ["system:masters"], usage: "client" }),
    etcdServer: await leaf("etcd-server", { commonName: "etcd", sans: LOOPBACK_SANS, usage: "server-and-client" }),
    admin: await leaf("admin", { commonName: "admin", organizations: ["system:masters"], usage: "client" }),
    scheduler: await leaf("scheduler", { commonName: "system:kube-scheduler", usage: "client" }),
    controllerManager: await leaf("controller-manager", { commonName: "system:kube-controller-manager", usage: "client" }),
    nodes,
    nodeServing,
    serviceAccountKey: { privateKey: readFileSync(saFiles.key, "utf8"), publicKey: readFileSync(saFiles.pub, "utf8") },
    files,
  };
}

/** Why a certificate on disk must be issued again, or "" when it is fine. */
function staleReason(have: CertKeyPair, ca: CertKeyPair, spec: CertSpec): string {
  if (!signedBy(have.cert, ca.cert)) return "renewed: not signed by the current CA";
  if (daysLeft(have.cert) < RENEW_BEFORE_DAYS) return `renewed: fewer than ${RENEW_BEFORE_DAYS} days left`;
  const x = new X509Certificate(have.cert);
  if (!x.subject.split("\n").includes(`CN=${spec.commonName}`)) return "renewed: another name";
  const sans = new Set((x.subjectAltName ?? "").split(", ").map((s) => s.replace(/^(DNS|IP Address):/, "")));
  const missing = (spec.sans ?? []).filter((s) => !sans.has(s) && !sans.has(expandIPv6(s)));
  if (missing.length) return `renewed: new names ${missing.join(", ")}`;
  return "";
}

function read(f: PkiFiles): CertKeyPair | undefined {
  if (!existsSync(f.cert) || !existsSync(f.key)) return undefined;
  return { cert: readFileSync(f.cert, "utf8"), key: readFileSync(f.key, "utf8") };
}

function write(f: PkiFiles, pair: CertKeyPair): void {
  writeSecret(f.key, pair.key);
  const tmp = `${f.cert}.tmp`;
  writeFileSync(tmp, pair.cert, { mode: 0o644 });
  renameSync(tmp, f.cert);
}

/** Keys are readable by their owner only. */
function writeSecret(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** A node agent's serving certificate names: the node, its addresses, loopback. */
export function nodeServingSans(nodeName: string, addresses: string[]): string[] {
  return unique([...LOOPBACK_SANS, nodeName, ...addresses]);
}

function machineAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && !(a.family === "IPv6" && a.address.startsWith("fe80")))
    .map((a) => a!.address);
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

// Node prints IPv6 SANs expanded ("0:0:0:0:0:0:0:1"): compare in that form too.
function expandIPv6(ip: string): string {
  if (!ip.includes(":")) return ip;
  const [head, tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const mid = ip.includes("::") ? Array(8 - h.length - t.length).fill("0") : [];
  return [...h, ...mid, ...t].map((p) => p.replace(/^0+(?=.)/, "").toUpperCase()).join(":");
}

/** What every server of a cluster holds alike: the CAs with their keys and the ServiceAccount signing key. */
export interface SharedServerKeys {
  ca: CertKeyPair;
  etcdCa: CertKeyPair;
  serviceAccountKey: { privateKey: string; publicKey: string };
}

/**
 * Writes a joining server's shared keys into its PKI directory, before ensurePki() issues its own
 * leaf certificates from them. Refuses to replace a different CA already there: that directory
 * belongs to another cluster.
 */
export function installSharedServerKeys(dir: string, keys: SharedServerKeys): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string): PkiFiles => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  for (const [name, pair] of [["ca", keys.ca], ["etcd-ca", keys.etcdCa]] as const) {
    const have = read(f(name));
    if (have && have.cert.trim() !== pair.cert.trim()) throw new Error(`${f(name).cert} holds another cluster's CA: use a new --data-dir for this cluster`);
    if (!have) write(f(name), pair);
  }
  writeSecret(join(dir, "sa.key"), keys.serviceAccountKey.privateKey);
  writeFileSync(join(dir, "sa.pub"), keys.serviceAccountKey.publicKey, { mode: 0o644 });
}
