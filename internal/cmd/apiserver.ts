// `skiff apiserver`: serves the API on one port, backed by etcd or by the in-memory store.
import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import type { KubeletClientTls } from "../apiserver/pod-logs.ts";
import { join } from "node:path";
import { createTokenFileAuthenticator } from "../auth/authn/token-file.ts";
import { startApiServer, type ServerTls } from "../apiserver/server.ts";
import { ensurePki, type ClusterPki } from "../pki/pki.ts";
import type { EtcdTls } from "../storage/etcd.ts";
import { parsePortRange, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { createLogger } from "../log/log.ts";
import { guarded } from "./guard.ts";
import { serviceAccountArgs, serviceAccountOptions } from "./serviceaccount-flags.ts";
import { createEtcdStore } from "../storage/etcd.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";
import { nodeSignerArgs, nodeSignerOptions } from "./node-signer-flags.ts";

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be HOST:PORT, got "${listen}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--listen port must be at most 65535, got ${port}`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

function nonNegative(args: Record<string, unknown>, flag: string): number {
  const v = String(args[flag]);
  if (!/^\d+$/.test(v)) throw new Error(`--${flag} must be a whole number, got "${v}"`);
  return Number(v);
}

function positive(args: Record<string, unknown>, flag: string): number {
  const n = nonNegative(args, flag);
  if (n === 0) throw new Error(`--${flag} must be at least 1`);
  return n;
}

export const apiserverCommand = defineCommand({
  meta: { name: "apiserver", description: "Serve the Skiff API (Connect, gRPC, gRPC-Web) backed by etcd" },
  args: {
    "etcd-servers": { type: "string", description: "Comma-separated etcd client URLs", default: "https://127.0.0.1:2379" },
    "etcd-cafile": { type: "string", description: "CA of etcd's serving certificate (default with --pki-dir: its ca.crt)", valueHint: "FILE" },
    "etcd-certfile": { type: "string", description: "Client certificate for etcd (default with --pki-dir: apiserver-client.crt)", valueHint: "FILE" },
    "etcd-keyfile": { type: "string", description: "Its key (default with --pki-dir: apiserver-client.key)", valueHint: "FILE" },
    "pki-dir": { type: "string", description: "The cluster PKI (created when absent, like skiff up does); supplies every TLS file not given", valueHint: "DIR" },
    "tls-cert-file": { type: "string", description: "Serving certificate (default with --pki-dir: apiserver.crt)", valueHint: "FILE" },
    "tls-private-key-file": { type: "string", description: "Its key", valueHint: "FILE" },
    "client-ca-file": { type: "string", description: "CA client certificates must be signed by (default with --pki-dir: ca.crt)", valueHint: "FILE" },
    "tls-san": { type: "string", description: "More DNS names / IPs for the serving certificate made in --pki-dir, comma-separated", valueHint: "NAMES" },
    "token-auth-file": { type: "string", description: "Static bearer tokens, CSV lines token,user,uid,\"group1,group2\"", valueHint: "FILE" },
    "etcd-prefix": { type: "string", description: "Key prefix in etcd", default: "/skiff" },
    "etcd-sync-interval": {
      type: "string",
      description: "Seconds between reads of etcd's member list: members added later are used, removed ones dropped (0 = only the --etcd-servers given, e.g. behind a proxy)",
      default: "30",
    },
    store: { type: "string", description: "Storage backend: etcd or memory (memory loses everything on exit)", default: "etcd" },
    listen: { type: "string", description: "HOST:PORT to serve on", default: "127.0.0.1:6443" },
    "watch-cache-size": { type: "string", description: "Events per kind kept for watch resumes", default: "10000" },
    "watch-cache-bytes": { type: "string", description: "Bytes of events per kind kept for watch resumes (stored object sizes)", default: String(64 * 1024 * 1024) },
    "compaction-interval": { type: "string", description: "Seconds between storage compactions (0 = never)", default: "300" },
    "service-cluster-ip-range": { type: "string", description: "IPv4 CIDR Service ClusterIPs are allocated from", default: "10.96.0.0/12" },
    "service-node-port-range": { type: "string", description: "Port range NodePorts are allocated from, FIRST-LAST", default: "30000-32767" },
    "max-watches-per-connection": { type: "string", description: "Open watches one client connection may hold (0 = no limit)", default: "1000" },
    "watch-buffer-bytes": { type: "string", description: "Bytes of unsent events one watch may hold before it is cut as too slow", default: String(8 * 1024 * 1024) },
    "watch-buffer-total-bytes": { type: "string", description: "Bytes of unsent events all watches together may hold; over it the largest are cut", default: String(512 * 1024 * 1024) },
    ...serviceAccountArgs,
    "encryption-provider-config": { type: "string", description: "EncryptionConfiguration file: resources encrypted at rest (Secrets), with their keys", valueHint: "FILE" },
    "kubelet-client-certificate": { type: "string", description: "PEM client certificate (CN system:apiserver) for node agents' ports (PodService.Log; default with --pki-dir: apiserver-client.crt)", valueHint: "FILE" },
    "kubelet-client-key": { type: "string", description: "PEM private key of --kubelet-client-certificate", valueHint: "FILE" },
    "kubelet-certificate-authority": { type: "string", description: "PEM CA of node agents' serving certificates (default with --pki-dir: ca.crt)", valueHint: "FILE" },
    ...nodeSignerArgs,
    "endpoint-reconciler-type": {
      type: "string",
      description: "lease: every apiserver on this etcd renews a Lease and the kubernetes Endpoints list the live ones (clients find them there); none: this apiserver's address, written once",
      default: "lease",
    },
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("apiserver", args["log-level"]);
    const endpointReconciler = args["endpoint-reconciler-type"];
    if (endpointReconciler !== "lease" && endpointReconciler !== "none") throw new Error(`--endpoint-reconciler-type must be lease or none, got "${endpointReconciler}"`);
    const { host, port } = parseListen(args.listen);
    const kubeletFiles = kubeletClientFiles(args);
    // Bad ranges stop the server before it touches storage.
    parseServiceCidr(args["service-cluster-ip-range"]);
    parsePortRange(args["service-node-port-range"]);
    if (args.store !== "etcd" && args.store !== "memory") throw new Error(`--store must be etcd or memory, got "${args.store}"`);
    const { tls, etcdTls, pki } = await apiserverTls(args);
    // Toward node agents (PodService.Log): the --kubelet-* files, else the PKI's apiserver-client (CN system:apiserver) and CA.
    const kubeletClient = kubeletFiles ?? (pki && { ...pki.apiserverClient, ca: pki.ca.cert });
    // With --pki-dir the PKI's sa.key signs ServiceAccount tokens unless a key file is given.
    const saOptions = serviceAccountOptions(args, args["pki-dir"] ? join(args["pki-dir"], "sa.key") : undefined);
    const tokenAuthenticators = args["token-auth-file"] ? [createTokenFileAuthenticator(args["token-auth-file"])] : [];
    let store: Store;
    if (args.store === "memory") store = createMemoryStore();
    else if (args.store === "etcd") {
      const endpoints = args["etcd-servers"].split(",").map((s) => s.trim());
      if (endpoints.some((e) => e.startsWith("https:")) && !etcdTls) throw new Error("https etcd servers need --etcd-cafile, --etcd-certfile and --etcd-keyfile (or --pki-dir)");
      const syncS = Number(args["etcd-sync-interval"]);
      if (!(syncS >= 0) || syncS > 86_400) throw new Error(`--etcd-sync-interval must be 0 to 86400 seconds, got "${args["etcd-sync-interval"]}"`);
      store = createEtcdStore({
        endpoints,
        prefix: args["etcd-prefix"],
        tls: etcdTls,
        autoSyncIntervalMs: syncS * 1000,
        onEndpointsChanged: (now) => log.info({ endpoints: now }, "etcd members changed: using these endpoints now"),
      });
    } else throw new Error(`--store must be etcd or memory, got "${args.store}"`);
    const server = await startApiServer({
      store,
      tls,
      tokenAuthenticators,
      host,
      port,
      log,
      watchCacheSize: Number(args["watch-cache-size"]),
      watchCacheBytes: positive(args, "watch-cache-bytes"),
      compactionIntervalMs: Number(args["compaction-interval"]) * 1000,
      serviceCidr: args["service-cluster-ip-range"],
      nodePortRange: args["service-node-port-range"],
      maxWatchesPerConnection: nonNegative(args, "max-watches-per-connection"),
      watchBufferBytes: positive(args, "watch-buffer-bytes"),
      watchBufferTotalBytes: positive(args, "watch-buffer-total-bytes"),
      ...saOptions,
      encryptionProviderConfig: args["encryption-provider-config"],
      kubeletClient,
      nodeSigner: nodeSignerOptions(args, pki),
      endpointReconciler,
    });
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "shutting down");
      await server.close();
      await store.close();
      process.exit(0);
    };
    process.on("SIGTERM", () => void stop("SIGTERM"));
    process.on("SIGINT", () => void stop("SIGINT"));
  }),
});

/** The three --kubelet-* files, read; none given: undefined (PodService.Log then says what to set). */
export function kubeletClientFiles(args: { "kubelet-client-certificate"?: string; "kubelet-client-key"?: string; "kubelet-certificate-authority"?: string }): KubeletClientTls | undefined {
  const flags = ["kubelet-client-certificate", "kubelet-client-key", "kubelet-certificate-authority"] as const;
  const given = flags.filter((f) => args[f]);
  if (given.length === 0) return undefined;
  if (given.length < flags.length) throw new Error(`--${flags.filter((f) => !args[f]).join(", --")} missing: the --kubelet-* flags go together`);
  const read = (flag: (typeof flags)[number]) => {
    try {
      return readFileSync(args[flag]!, "utf8");
    } catch (err) {
      throw new Error(`--${flag} ${args[flag]}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: read("kubelet-client-certificate"), key: read("kubelet-client-key"), ca: read("kubelet-certificate-authority") };
}

interface TlsFlags {
  "pki-dir"?: string;
  "tls-cert-file"?: string;
  "tls-private-key-file"?: string;
  "client-ca-file"?: string;
  "tls-san"?: string;
  "etcd-cafile"?: string;
  "etcd-certfile"?: string;
  "etcd-keyfile"?: string;
  "service-cluster-ip-range"?: string;
}

/** The serving and etcd TLS material: files given by flag, the rest from --pki-dir. */
async function apiserverTls(args: TlsFlags): Promise<{ tls: ServerTls; etcdTls?: EtcdTls; pki?: ClusterPki }> {
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`--${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
  };
  const pki = args["pki-dir"]
    ? await ensurePki(args["pki-dir"], {
        serviceCidr: args["service-cluster-ip-range"],
        extraSans: (args["tls-san"] ?? "").split(",").map((s) => s.trim()).filter(Boolean),
      })
    : undefined;
  const pick = (flag: keyof TlsFlags, fallback: string | undefined, what: string) => {
    const file = args[flag];
    if (file) return read(flag, file);
    if (fallback !== undefined) return fallback;
    throw new Error(`the apiserver serves TLS only: give --${flag} (${what}) or --pki-dir`);
  };
  const tls: ServerTls = {
    cert: pick("tls-cert-file", pki?.apiserver.cert, "the serving certificate"),
    key: pick("tls-private-key-file", pki?.apiserver.key, "its key"),
    clientCa: pick("client-ca-file", pki?.ca.cert, "the CA of client certificates"),
  };
  const etcdGiven = args["etcd-cafile"] || args["etcd-certfile"] || args["etcd-keyfile"];
  const etcdTls: EtcdTls | undefined =
    etcdGiven || pki
      ? {
          ca: pick("etcd-cafile", pki?.ca.cert, "etcd's CA"),
          cert: pick("etcd-certfile", pki?.apiserverClient.cert, "the client certificate for etcd"),
          key: pick("etcd-keyfile", pki?.apiserverClient.key, "its key"),
        }
      : undefined;
  return { tls, etcdTls, pki };
}
