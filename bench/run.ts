// Benchmarks, run by name: `npm run bench -- <name> [options]` (`--help` after a name for its
// options). These are reports, not tests: they exit 0 when they ran, whatever the figures, and
// non-zero only when something failed. Adding a benchmark = a module exporting `run(argv)` and
// one line in `benches` below.
import { cleanup, cleanupOnSignals, interruptedBy } from "./lib/cleanup.ts";

export interface Benchmark {
  run(argv: string[]): Promise<void>;
}

const benches: Record<string, { about: string; load: () => Promise<Benchmark> }> = {
  api: { about: "apiserver create/get/list latency vs raw etcd put, and watch delivery to 1,000 watchers", load: () => import("./api.ts") },
  logger: { about: "the container log writer (CRI format, timestamps): lines/s and RSS, beside the raw sh+cat one", load: () => import("./logger.ts") },
  pods: { about: "pod create → Running on a real node (containerd, CNI, agent) vs ctr run -d", load: () => import("./pods.ts") },
  multinode: { about: "pod → pod HTTP on one node vs across nodes, and route convergence after Node changes, on netns nodes (root)", load: () => import("./multinode.ts") },
  proxy: { about: "service proxy: HTTP through a ClusterIP vs the pod IP; Endpoints change → nftables rules with 1,000 Services", load: () => import("./proxy.ts") },
  dns: { about: "cluster DNS queries/s over UDP and TCP; Service create (with IP/port allocation) vs ConfigMap create", load: () => import("./dns.ts") },
  authz: { about: "authorization per request (node authorizer + RBAC) on 1,000 bindings and 4,000 pods; re-checking 1,000 watches", load: () => import("./authz.ts") },
  soak: { about: "pod create/delete churn on a real node, then count what is left (netns, veths, IPs, cgroups, mounts, containerd objects, shims, logs, fds, RSS)", load: () => import("./soak.ts") },
  "soak-etcd": { about: "etcd alone under the soak's write pattern, fast: does its memory level off (RSS, Go heap, db file, raft log)?", load: () => import("./soak-etcd.ts") },
  ha: { about: "kill -9 of the client's apiserver → first read/write on the other; snapshot restore → serving", load: () => import("./ha.ts") },
  "etcd-leader": { about: "kill -9 of the etcd leader (3 members) → first write, a pod scheduled, a ReplicaSet pod created", load: () => import("./ha-etcd.ts") },
  "idle-ops": { about: "CPU µs per steady per-node operation (keepalive ping, Lease renewal, Node status write, watch BOOKMARK) in the apiserver, etcd, the client", load: () => import("./idle-ops.ts") },
  "pod-files": { about: "the node agent's file work per new pod (/etc files, token directory, log and termination-log files): CPU µs per pod on tmpfs and disk", load: () => import("./pod-files.ts") },
  "client-calls": { about: "the client side of an API call alone: CPU µs per unary call (concurrency 1 and 32) and per watch event, against a fixed-answer gRPC server", load: () => import("./client-calls.ts") },
  codec: { about: "CPU µs per protobuf decode / encode / clone of a Running Pod, a Node, a Deployment: protobuf-es vs the compiled codec", load: () => import("./codec.ts") },
  "store-writes": { about: "CPU µs per etcd store write (update lone / 10 at once, create) in the store's process and in etcd", load: () => import("./store-writes.ts") },
  scale: { about: "5,000 pods (50 Deployments) on 500 hollow nodes: pods/s, binds/s, raw etcd put rate", load: () => import("./scale.ts") },
};

function usage(): string {
  const names = Object.entries(benches).map(([name, b]) => `  ${name.padEnd(10)} ${b.about}`);
  return ["usage: npm run bench -- <name> [options]   (<name> --help for its options)", "", "benchmarks:", ...names].join("\n");
}

async function main(): Promise<number> {
  const [name, ...argv] = process.argv.slice(2);
  if (name === undefined || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const bench = benches[name];
  if (!bench) {
    console.error(`unknown benchmark "${name}"\n\n${usage()}`);
    return 2;
  }
  cleanupOnSignals();
  try {
    await (await bench.load()).run(argv);
    return 0;
  } catch (err) {
    if (interruptedBy()) return 1; // the signal handler is tearing down and exits with its own code
    console.error(`\nbenchmark "${name}" failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

process.exit(await main());
