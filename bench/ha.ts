// `npm run bench -- ha`: how long clients are without an apiserver when theirs dies, and how long
// a snapshot restore takes to a serving cluster.
//
//   failover  two `skiff apiserver` children on one etcd (TLS, --endpoint-reconciler-type lease);
//             a client given both URLs reads a ConfigMap every --interval ms; kill -9 of the one it
//             uses; time to the first successful read and the first successful write on the other.
//             The killed one is started again and the next round kills the other.
//   restore   a snapshot of etcd (N ConfigMaps), then: apiserver stopped, etcd killed, the
//             snapshot restored (etcdctl), etcd started, its revision carried past the old one,
//             an apiserver started; time of each step and from the start to /readyz and the
//             first successful List.
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ConfigMapSchema, type ConfigMap } from "../gen/skiff/v1alpha1/config_pb.js";
import { bumpRevision } from "../internal/etcdsnapshot/bump.ts";
import { restoreSnapshot } from "../internal/etcdsnapshot/restore.ts";
import { saveSnapshot } from "../internal/etcdsnapshot/snapshot.ts";
import { createResourceClient } from "../internal/client/resource-client.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import type { FailoverTransport } from "../internal/client/failover.ts";
import { startEtcd } from "../test/harness/etcd.ts";
import { apiserverTlsArgs, testPki } from "../test/harness/pki.ts";
import { freePort, LOOPBACK } from "../test/harness/ports.ts";
import { makeTempDir, removeTempDir } from "../test/harness/tmp.ts";
import { startSkiff, waitReady, type Daemon } from "./lib/child.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { ETCD_PREFIX } from "./lib/control-plane.ts";
import { summarize } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";
import { untilServed } from "./lib/until-served.ts";

const options = {
  rounds: { type: "string", default: "6" },
  interval: { type: "string", default: "10" },
  objects: { type: "string", default: "2000" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- ha [options]

  --rounds N      apiserver kills (default 6)
  --interval MS   the client's read interval while waiting (default 10)
  --objects N     ConfigMaps in etcd before the snapshot (default 2000)`;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const rounds = Number(values.rounds);
  const intervalMs = Number(values.interval);
  const objects = Number(values.objects);
  const pki = await testPki();
  const etcd = await startEtcd();
  onCleanup(() => etcd.stop());
  const ports = [await freePort(), await freePort()];
  const urls = ports.map((p) => `https://${LOOPBACK}:${p}`);
  const start = async (i: number): Promise<Daemon> => {
    const d = startSkiff(["apiserver", "--etcd-servers", etcd.endpoint, "--etcd-prefix", ETCD_PREFIX, "--listen", `${LOOPBACK}:${ports[i]}`, "--endpoint-reconciler-type", "lease", "--log-level", "warn", ...apiserverTlsArgs(pki)]);
    await waitReady(`${urls[i]}/readyz`, d, 60_000);
    return d;
  };
  const servers = [await start(0), await start(1)];
  const transport = createApiTransport(urls, pki.adminCredentials) as FailoverTransport;
  const cms = createResourceClient<ConfigMap>(transport, "ConfigMap");
  await cms.create(create(ConfigMapSchema, { metadata: { name: "probe", namespace: "default" }, data: { n: "0" } }));

  // Failover rounds.
  const toRead: number[] = [];
  const toWrite: number[] = [];
  const failedCalls: number[] = [];
  const restarts: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const victim = urls.indexOf(transport.current());
    await cms.get("default", "probe");
    const killedAt = performance.now();
    servers[victim].child.kill("SIGKILL");
    // A failover shows the client only UNAVAILABLE (its apiserver gone); anything else is a bug.
    const failover = { retryOn: [Code.Unavailable], intervalMs };
    const read = await untilServed(() => cms.get("default", "probe", { timeoutMs: 5000 }), failover);
    const wrote = await untilServed(async () => {
      const cm = await cms.get("default", "probe");
      cm.data.n = String(r + 1);
      return cms.update(cm);
    }, failover);
    toRead.push(read.servedAt - killedAt);
    toWrite.push(wrote.servedAt - killedAt);
    failedCalls.push(read.failed);
    await servers[victim].stop();
    const restartAt = performance.now();
    servers[victim] = await start(victim);
    restarts.push(performance.now() - restartAt);
  }
  const read = summarize(toRead);
  const write = summarize(toWrite);
  console.log(`\nfailover: kill -9 of the client's apiserver → first success on the other (${rounds} rounds, 2 apiservers, one etcd, TLS)\n`);
  console.log(
    renderTable(
      ["", "p50 ms", "max ms", "mean ms"],
      [
        ["first read", fmtMs(read.p50), fmtMs(read.max), fmtMs(read.mean)],
        ["first write", fmtMs(write.p50), fmtMs(write.max), fmtMs(write.mean)],
      ],
      "  ",
    ),
  );
  console.log(`  calls that failed UNAVAILABLE in between, per round: ${failedCalls.join(", ")}`);
  console.log(`  (for scale: starting a killed apiserver again to /readyz took p50 ${fmtMs(summarize(restarts).p50)} ms)`);

  // Snapshot → restore → ready.
  const dir = makeTempDir("skiff-bench-ha-");
  onCleanup(() => removeTempDir(dir));
  for (let i = 0; i < objects; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, objects - i) }, (_, j) => cms.create(create(ConfigMapSchema, { metadata: { name: `cm-${i + j}`, namespace: "default" }, data: { k: "x".repeat(200) } }))));
  }
  const conn = { endpoints: [etcd.endpoint], tls: etcd.tls };
  const t0 = performance.now();
  const snap = await saveSnapshot(conn, join(dir, "snapshots"), "bench", "local");
  const tSaved = performance.now();
  await cms.create(create(ConfigMapSchema, { metadata: { name: "after-snapshot", namespace: "default" } }));
  transport.close();
  await Promise.all(servers.map((s) => s.stop()));
  const r0 = performance.now();
  await etcd.kill();
  const restored = await restoreSnapshot(join(dir, "snapshots", snap.file), { dataDir: etcd.dataDir, memberName: etcd.memberName, peerUrl: etcd.peerUrl });
  const tRestored = performance.now();
  await etcd.restart();
  const tEtcd = performance.now();
  const bumped = await bumpRevision(conn, restored.previousRevision ?? 0);
  const tBumped = performance.now();
  const server = await start(0);
  const tReady = performance.now();
  const after = createResourceClient<ConfigMap>(createApiTransport(urls[0], pki.adminCredentials), "ConfigMap");
  const listed = await after.list("default");
  const tListed = performance.now();
  await server.stop();
  console.log(`\nrestore: ${objects} ConfigMaps, snapshot ${(snap.size / 2 ** 20).toFixed(1)} MiB at revision ${snap.revision}; revision carried ${bumped.from} → ${bumped.to}\n`);
  console.log(
    renderTable(
      ["step", "ms"],
      [
        ["snapshot save", fmtMs(tSaved - t0)],
        ["etcdctl snapshot restore (old dir moved aside)", fmtMs(tRestored - r0)],
        ["etcd healthy", fmtMs(tEtcd - tRestored)],
        ["revision carried past the old one", fmtMs(tBumped - tEtcd)],
        ["apiserver /readyz", fmtMs(tReady - tBumped)],
        ["first List", fmtMs(tListed - tReady)],
        ["restore start → first List", fmtMs(tListed - r0)],
      ],
      "  ",
    ),
  );
  const names = new Set(listed.items.map((c) => c.metadata!.name));
  console.log(`  restored state: ${listed.items.length} ConfigMaps; the one made after the snapshot is ${names.has("after-snapshot") ? "PRESENT (wrong)" : "gone (right)"}`);
}
