// The flags `skiff server` and `skiff up` share (up is a `skiff server --cluster-init` on one
// machine with its conveniences), and the ones only `skiff server` has.
import { containerLogArgs } from "./agent.ts";
import { upSnapshotArgs } from "./etcd-snapshot.ts";
import { evictionArgs } from "./eviction-flags.ts";
import { serviceAccountArgs } from "./serviceaccount-flags.ts";

export const sharedServerArgs = {
  "etcd-port": { type: "string", description: "etcd client port (its peer port is the next one, its metrics/health port the one after)", default: "2379" },
  "tls-san": { type: "string", description: "More DNS names / IPs for the apiserver's certificate, comma-separated", valueHint: "NAMES" },
  containerd: { type: "string", description: "containerd socket to use (default: /run/containerd/containerd.sock if it serves, else start one under the data dir)" },
  "node-name": { type: "string", description: "This node's name (default: the hostname, lowercased); a server's etcd member has the same name" },
  "pod-cidr": { type: "string", description: "This node's pod network", default: "10.88.0.0/24" },
  ...containerLogArgs,
  "agent-listen": { type: "string", description: "HOST:PORT of the agent's log service (and its /metrics, /healthz)", default: "127.0.0.1:10250" },
  "scheduler-metrics-listen": { type: "string", description: 'HOST:PORT of the scheduler\'s /metrics and health (TLS); "off" for none', default: "127.0.0.1:10259" },
  "controller-manager-metrics-listen": { type: "string", description: 'HOST:PORT of the controller-manager\'s /metrics and health (TLS); "off" for none', default: "127.0.0.1:10257" },
  "service-cluster-ip-range": { type: "string", description: "IPv4 CIDR Service ClusterIPs are allocated from", default: "10.96.0.0/12" },
  "service-node-port-range": { type: "string", description: "Port range NodePorts are allocated from, FIRST-LAST", default: "30000-32767" },
  "cluster-domain": { type: "string", description: "The cluster's DNS domain", default: "cluster.local" },
  "dns-upstream": { type: "string", description: "Where the node's DNS sends names outside the cluster domain (default: none, they are refused)", valueHint: "IP[:PORT]" },
  ...serviceAccountArgs,
  ...evictionArgs,
  ...upSnapshotArgs,
  "encryption-provider-config": {
    type: "string",
    description: "EncryptionConfiguration file for Secrets at rest (default: <data-dir>/encryption-config.yaml, generated with a new key on first start; a joining server receives the cluster's)",
    valueHint: "FILE",
  },
  "log-level": { type: "string", description: "trace, debug, info, warn or error", default: "info" },
} as const;

export const serverOnlyArgs = {
  "data-dir": { type: "string", description: "Where this server keeps etcd's data, the PKI and the agent's state", default: "/var/lib/skiff" },
  listen: { type: "string", description: "HOST:PORT for the apiserver (default: <advertise address>:6443)" },
  "cluster-init": { type: "boolean", description: "Start a new cluster: its PKI and the first etcd member", default: false },
  server: { type: "string", description: "Join the cluster of this server (https://HOST:PORT) as another etcd member and apiserver (with --token)", valueHint: "URL" },
  token: { type: "string", description: "A join token of role server (skiff token create --role server) for --server", valueHint: "K10…" },
  "disable-agent": { type: "boolean", description: "Run no node agent on this server (it runs no pods)", default: false },
} as const;

type StringFlags<T> = { [K in keyof T]: T[K] extends { type: "boolean" } ? boolean : T[K] extends { default: string } ? string : string | undefined };
export type SharedServerFlags = StringFlags<typeof sharedServerArgs>;
