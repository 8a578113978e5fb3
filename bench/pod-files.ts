// `npm run bench -- pod-files`: the node agent's file work for each new pod, on its own — the
// pod's /etc files (hosts, hostname, resolv.conf), its ServiceAccount token directory (the atomic
// writer: token, ca.crt, namespace behind ..data), one container instance's log directory and
// termination-log file — then the pod directory's removal. The product's own functions, one pod
// after another, on a tmpfs (/dev/shm, where hollow nodes keep theirs) and on the disk of the
// temp dir (a real node's data dir). Prints the process's CPU per pod (user + system, all its
// threads: the thread pool's work counts) and the wall time per pod.
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { onMemoryFs } from "../internal/agent/file-ops.ts";
import { logPath, removePodDir, writeEtcFiles } from "../internal/agent/pod-files.ts";
import { createTokenProjector } from "../internal/agent/serviceaccount-token.ts";
import { prepareInstanceFiles, terminationLogPath } from "../internal/agent/termination-message.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { renderTable } from "./lib/table.ts";

const options = {
  pods: { type: "string", default: "3000" },
  dir: { type: "string", multiple: true },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- pod-files [options]

  --pods N     pods per directory (default 3,000; the first 10 % warm up and are not counted)
  --dir PATH   where to make the pods' directories, repeatable (default: /dev/shm and the temp dir)`;

const TMPFS_MAGIC = 0x01021994;

function pod(i: number): Pod {
  return create(PodSchema, {
    metadata: { name: `web-${i}`, namespace: "bench", uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` },
    spec: { serviceAccountName: "default", containers: [{ name: "app", image: "registry.local/app:1" }] },
  });
}

// About the size of the real ones: an ES256 JWT with the bound claims, a one-certificate CA.
const TOKEN = `eyJhbGciOiJFUzI1NiJ9.${"x".repeat(720)}.${"y".repeat(86)}`;
const CA = `-----BEGIN CERTIFICATE-----\n${"QUJD".repeat(150).replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----\n`;

interface Result {
  place: string;
  fs: string;
  writeUs: number;
  removeUs: number;
  wallUs: number;
}

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

async function measure(base: string, pods: number): Promise<Result> {
  const rootDir = mkdtempSync(join(base, "skiff-pod-files-"));
  onCleanup(() => rmSync(rootDir, { recursive: true, force: true }));
  const resolvPath = join(rootDir, "host-resolv.conf");
  writeFileSync(resolvPath, "nameserver 10.0.0.2\nsearch example.internal\n");
  const tokens = createTokenProjector({
    rootDir,
    clusterCa: CA,
    tmpfs: false,
    requestToken: async () => ({ token: TOKEN, expiresAt: new Date(Date.now() + 3600_000) }),
  });
  tokens.foundOnDisk([]); // a fresh agent: no token of an earlier one to read back
  const dns = { nameserver: "10.96.0.10", domain: "cluster.local" };
  const warm = Math.floor(pods / 10);
  let write = 0;
  let remove = 0;
  let wall = 0;
  for (let i = 0; i < pods; i++) {
    const p = pod(i);
    const uid = p.metadata!.uid;
    const t0 = performance.now();
    const c0 = cpuUs();
    // As pod-worker.ts and start-container.ts do it: /etc files and token at once, then the container's files.
    await Promise.all([writeEtcFiles(rootDir, p, "10.244.1.7", resolvPath, dns), tokens.ensure(p)]);
    await prepareInstanceFiles(logPath(rootDir, uid, "app", 0), terminationLogPath(rootDir, uid, "app", 0), onMemoryFs(rootDir));
    const c1 = cpuUs();
    const t1 = performance.now();
    tokens.forget(uid);
    await removePodDir(rootDir, uid);
    const c2 = cpuUs();
    if (i >= warm) {
      write += c1 - c0;
      remove += c2 - c1;
      wall += (t1 - t0) * 1000;
    }
  }
  rmSync(rootDir, { recursive: true, force: true });
  const n = pods - warm;
  const type = statfsSync(base).type;
  return { place: base, fs: type === TMPFS_MAGIC ? "tmpfs" : `0x${type.toString(16)}`, writeUs: write / n, removeUs: remove / n, wallUs: wall / n };
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const pods = Number(values.pods);
  if (!Number.isInteger(pods) || pods < 10) throw new Error(`--pods: a whole number of at least 10, not "${values.pods}"`);
  const places = values.dir ?? ["/dev/shm", tmpdir()];
  const results: Result[] = [];
  for (const place of places) results.push(await measure(place, pods));
  console.log(`pod files: ${pods} pods per directory (${pods - Math.floor(pods / 10)} counted), one after another; load average ${(await import("node:os")).loadavg()[0].toFixed(1)}\n`);
  console.log(
    renderTable(
      ["directory", "file system", "CPU µs per pod (write)", "CPU µs per pod (remove)", "wall µs per pod (write)"],
      results.map((r) => [r.place, r.fs, r.writeUs.toFixed(0), r.removeUs.toFixed(0), r.wallUs.toFixed(0)]),
    ),
  );
}
