// `skiff apiserver`: serves the API on one port, backed by etcd or by the in-memory store.
import { defineCommand } from "citty";
import { startApiServer } from "../apiserver/server.ts";
import { parsePortRange, parseServiceCidr } from "../apiserver/service-alloc.ts";
import { createLogger } from "../log/log.ts";
import { guarded } from "./guard.ts";
import { serviceAccountArgs, serviceAccountOptions } from "./serviceaccount-flags.ts";
import { createEtcdStore } from "../storage/etcd.ts";
import { createMemoryStore } from "../storage/memory.ts";
import type { Store } from "../storage/store.ts";

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
    "etcd-servers": { type: "string", description: "Comma-separated etcd client URLs", default: "http://127.0.0.1:2379" },
    "etcd-prefix": { type: "string", description: "Key prefix in etcd", default: "/skiff" },
    store: { type: "string", description: "Storage backend: etcd or memory (memory loses everything on exit)", default: "etcd" },
    listen: { type: "string", description: "HOST:PORT to serve on", default: "127.0.0.1:6443" },
    "watch-cache-size": { type: "string", description: "Events per kind kept for watch resumes", default: "10000" },
    "compaction-interval": { type: "string", description: "Seconds between storage compactions (0 = never)", default: "300" },
    "service-cluster-ip-range": { type: "string", description: "IPv4 CIDR Service ClusterIPs are allocated from", default: "10.96.0.0/12" },
    "service-node-port-range": { type: "string", description: "Port range NodePorts are allocated from, FIRST-LAST", default: "30000-32767" },
    "max-watches-per-connection": { type: "string", description: "Open watches one client connection may hold (0 = no limit)", default: "1000" },
    "watch-buffer-bytes": { type: "string", description: "Bytes of unsent events one watch may hold before it is cut as too slow", default: String(8 * 1024 * 1024) },
    "watch-buffer-total-bytes": { type: "string", description: "Bytes of unsent events all watches together may hold; over it the largest are cut", default: String(512 * 1024 * 1024) },
    ...serviceAccountArgs,
    "encryption-provider-config": { type: "string", description: "EncryptionConfiguration file: resources encrypted at rest (Secrets), with their keys", valueHint: "FILE" },
    "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
  },
  run: guarded(async ({ args }) => {
    const log = createLogger("apiserver", args["log-level"]);
    const saOptions = serviceAccountOptions(args);
    const { host, port } = parseListen(args.listen);
    // Bad ranges stop the server before it touches storage.
    parseServiceCidr(args["service-cluster-ip-range"]);
    parsePortRange(args["service-node-port-range"]);
    let store: Store;
    if (args.store === "memory") store = createMemoryStore();
    else if (args.store === "etcd") {
      store = createEtcdStore({ endpoints: args["etcd-servers"].split(",").map((s) => s.trim()), prefix: args["etcd-prefix"] });
    } else throw new Error(`--store must be etcd or memory, got "${args.store}"`);
    const server = await startApiServer({
      store,
      host,
      port,
      log,
      watchCacheSize: Number(args["watch-cache-size"]),
      compactionIntervalMs: Number(args["compaction-interval"]) * 1000,
      serviceCidr: args["service-cluster-ip-range"],
      nodePortRange: args["service-node-port-range"],
      maxWatchesPerConnection: nonNegative(args, "max-watches-per-connection"),
      watchBufferBytes: positive(args, "watch-buffer-bytes"),
      watchBufferTotalBytes: positive(args, "watch-buffer-total-bytes"),
      ...saOptions,
      encryptionProviderConfig: args["encryption-provider-config"],
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
