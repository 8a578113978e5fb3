// `npm run bench -- pod-files`: the node agent's file work for each new pod, on its own — the
// pod's /etc files (hosts, hostname, resolv.conf), its ServiceAccount token directory (the atomic
// writer: token, ca.crt, namespace behind ..data), one container instance's log directory and
// termination-log file — then the pod directory's removal. The product's own functions, one pod
// after another, on a tmpfs (/dev/shm, where hollow nodes keep theirs) and on the disk of the
// temp dir (a real node's data dir). Prints the process's CPU per pod (user + system, all its
// threads: the thread pool's work counts) and the wall time per pod.
//
// --baseline DIR: the same functions of another checkout (DIR holds its internal/ and gen/, e.g.
// `git worktree add` or `git archive main internal gen | tar -x -C DIR`) measured in the same
// process, in alternating blocks of 100 pods: on a machine other processes load, both sides see
// the same load, which separate runs do not.
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { onCleanup } from "./lib/cleanup.ts";
import { renderTable } from "./lib/table.ts";

const options = {
  pods: { type: "string", default: "3000" },
  dir: { type: "string", multiple: true },
  baseline: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- pod-files [options]

  --pods N        pods per directory (default 3,000; the first 10 % warm up and are not counted)
  --dir PATH      where to make the pods' directories, repeatable (default: /dev/shm and the temp dir)
  --baseline DIR  also run another checkout's functions (DIR/internal, DIR/gen), alternating
                  blocks of 100 pods with this one's in this process; prints the median and the
                  lowest block of each side`;

const TMPFS_MAGIC = 0x01021994;
const BLOCK = 100;

let serial = 0;
function pod(): Pod {
  const i = serial++;
  return create(PodSchema, {
    metadata: { name: `web-${i}`, namespace: "bench", uid: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}` },
    spec: { serviceAccountName: "default", containers: [{ name: "app", image: "registry.local/app:1" }] },
  });
}

// About the size of the real ones: an ES256 JWT with the bound claims, a one-certificate CA.
const TOKEN = `eyJhbGciOiJFUzI1NiJ9.${"x".repeat(720)}.${"y".repeat(86)}`;
const CA = `-----BEGIN CERTIFICATE-----\n${"QUJD".repeat(150).replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----\n`;
const dns = { nameserver: "10.96.0.10", domain: "cluster.local" };

const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** One checkout's agent functions, with its own module state (what it remembers of each pod). */
async function loadSide(root: string) {
  const at = (path: string) => import(pathToFileURL(join(root, path)).href);
  const [podFiles, tokens, termination, fileOps] = await Promise.all([
    at("internal/agent/pod-files.ts") as Promise<typeof import("../internal/agent/pod-files.ts")>,
    at("internal/agent/serviceaccount-token.ts") as Promise<typeof import("../internal/agent/serviceaccount-token.ts")>,
    at("internal/agent/termination-message.ts") as Promise<typeof import("../internal/agent/termination-message.ts")>,
    at("internal/agent/file-ops.ts") as Promise<typeof import("../internal/agent/file-ops.ts")>,
  ]);
  return { podFiles, tokens, termination, fileOps };
}
type Side = Awaited<ReturnType<typeof loadSide>>;

/** A data dir under `base` for one side; `block(n)` writes then removes n new pods and returns the CPU and wall µs. */
function createRunner(side: Side, base: string) {
  const rootDir = mkdtempSync(join(base, "skiff-pod-files-"));
  onCleanup(() => rmSync(rootDir, { recursive: true, force: true }));
  const resolvPath = join(rootDir, "host-resolv.conf");
  writeFileSync(resolvPath, "nameserver 10.0.0.2\nsearch example.internal\n");
  const tokens = side.tokens.createTokenProjector({
    rootDir,
    clusterCa: CA,
    tmpfs: false,
    requestToken: async () => ({ token: TOKEN, expiresAt: new Date(Date.now() + 3600_000) }),
  });
  tokens.foundOnDisk([]); // a fresh agent: no token of an earlier one to read back
  const { logPath, removePodDir, writeEtcFiles } = side.podFiles;
  const { prepareInstanceFiles, terminationLogPath } = side.termination;
  return {
    async block(n: number): Promise<{ writeUs: number; removeUs: number; wallUs: number }> {
      let write = 0;
      let remove = 0;
      let wall = 0;
      for (let i = 0; i < n; i++) {
        const p = pod();
        const uid = p.metadata!.uid;
        const t0 = performance.now();
        const c0 = cpuUs();
        // As pod-worker.ts and start-container.ts do it: /etc files and token at once, then the container's files.
        await Promise.all([writeEtcFiles(rootDir, p, "10.244.1.7", resolvPath, dns), tokens.ensure(p)]);
        await prepareInstanceFiles(logPath(rootDir, uid, "app", 0), terminationLogPath(rootDir, uid, "app", 0), side.fileOps.onMemoryFs(rootDir));
        const c1 = cpuUs();
        const t1 = performance.now();
        tokens.forget(uid);
        await removePodDir(rootDir, uid);
        write += c1 - c0;
        remove += cpuUs() - c1;
        wall += (t1 - t0) * 1000;
      }
      return { writeUs: write, removeUs: remove, wallUs: wall };
    },
    close: () => rmSync(rootDir, { recursive: true, force: true }),
  };
}

const fsName = (base: string) => {
  const type = statfsSync(base).type;
  return type === TMPFS_MAGIC ? "tmpfs" : `0x${type.toString(16)}`;
};

async function measure(side: Side, base: string, pods: number): Promise<string[]> {
  const runner = createRunner(side, base);
  const warm = Math.floor(pods / 10);
  await runner.block(warm);
  const r = await runner.block(pods - warm);
  runner.close();
  const n = pods - warm;
  return [base, fsName(base), (r.writeUs / n).toFixed(0), (r.removeUs / n).toFixed(0), (r.wallUs / n).toFixed(0)];
}

/** Both sides in alternating blocks (the order flipped each round); per side the median and the lowest block's write CPU µs per pod. */
async function compare(sides: [string, Side][], base: string, pods: number): Promise<string[][]> {
  const runners = sides.map(([name, side]) => ({ name, runner: createRunner(side, base), blocks: [] as number[] }));
  const rounds = Math.max(3, Math.ceil(pods / BLOCK));
  for (let r = 0; r < rounds + 1; r++) {
    for (const s of r % 2 ? [...runners].reverse() : runners) {
      const { writeUs } = await s.runner.block(BLOCK);
      if (r > 0) s.blocks.push(writeUs / BLOCK); // the first round warms up
    }
  }
  for (const s of runners) s.runner.close();
  return runners.map((s) => {
    const sorted = [...s.blocks].sort((a, b) => a - b);
    return [base, fsName(base), s.name, sorted[Math.floor(sorted.length / 2)].toFixed(0), sorted[0].toFixed(0), String(sorted.length)];
  });
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
  const self = await loadSide(resolve(import.meta.dirname, ".."));
  const load = (await import("node:os")).loadavg()[0].toFixed(1);
  if (values.baseline !== undefined) {
    const baseline = await loadSide(resolve(values.baseline));
    const rows: string[][] = [];
    for (const place of places) rows.push(...(await compare([["baseline", baseline], ["this tree", self]], place, pods)));
    console.log(`pod files: blocks of ${BLOCK} pods, the baseline's and this tree's alternating in one process; load average ${load}\n`);
    console.log(renderTable(["directory", "file system", "code", "CPU µs per pod (write), median block", "lowest block", "blocks"], rows));
    return;
  }
  const rows: string[][] = [];
  for (const place of places) rows.push(await measure(self, place, pods));
  console.log(`pod files: ${pods} pods per directory (${pods - Math.floor(pods / 10)} counted), one after another; load average ${load}\n`);
  console.log(renderTable(["directory", "file system", "CPU µs per pod (write)", "CPU µs per pod (remove)", "wall µs per pod (write)"], rows));
}
