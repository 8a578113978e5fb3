// scratch: apiserver heap growth vs writes (not committed)
import { createClient } from "@connectrpc/connect";
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { ConfigMapService } from "../gen/skiff/v1alpha1/config_map_service_pb.js";
import { createGrpcTransport } from "../internal/client/grpc-transport.ts";
import { configMap } from "../test/fixtures/objects.ts";
import { startEtcd } from "../test/harness/etcd.ts";
import { apiserverTlsArgs, getTls, testPki } from "../test/harness/pki.ts";
import { freePort } from "../test/harness/ports.ts";

const WRITES = Number(process.argv[2] ?? 20000);
const extra = process.argv.slice(3);
const dir = "/tmp/memexp";
const pki = await testPki();
const etcd = await startEtcd();
const port = await freePort();
const child = spawn(process.execPath, ["--heapsnapshot-signal=SIGUSR2", process.cwd() + "/cmd/skiff.ts", "apiserver", "--etcd-servers", etcd.endpoint, "--listen", `127.0.0.1:${port}`, ...apiserverTlsArgs(pki), "--log-level", "warn", ...extra], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
const url = `https://127.0.0.1:${port}`;
for (;;) { const r = await getTls(`${url}/readyz`, { ca: pki.ca.cert }).catch(() => undefined); if (r?.status === 200) break; await new Promise((r) => setTimeout(r, 200)); }
const rss = () => Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) / 1024);
const client = createClient(ConfigMapService, createGrpcTransport({ baseUrl: url, tls: pki.adminNodeOptions }));
const payload = "x".repeat(1000);
for (let i = 0; i < 100; i++) await client.create({ configMap: configMap(`cm-${i}`, { v: payload }) });
let next = 0;
const snap = async (label: string) => {
  const before = readdirSync(dir).length;
  child.kill("SIGUSR2");
  while (readdirSync(dir).length === before) await new Promise((r) => setTimeout(r, 500));
  let last = -1;
  for (;;) { await new Promise((r) => setTimeout(r, 2000)); const f = readdirSync(dir).filter((x) => x.endsWith(".heapsnapshot")).sort().pop()!; const sz = statSync(dir + "/" + f).size; if (sz > 0 && sz === last) break; last = sz; }
  console.log(label, "rss", rss());
};
const marks = [WRITES / 4, WRITES / 2, WRITES];
for (const m of marks) {
  await Promise.all(Array.from({ length: 16 }, async () => { for (;;) { const i = next++; if (i >= m) return; await client.update({ configMap: configMap(`cm-${i % 100}`, { v: payload, i: String(i) }) }); } }));
  const met = (await getTls(`${url}/metrics`, pki.adminNodeOptions)).body.split("\n").filter((l) => /heap_size_used|external_memory|heap_size_total/.test(l) && !l.startsWith("#")).join(" | ");
  console.log("writes", m, "rss", rss(), met);
  if (m !== marks[0]) await snap(`snap@${m}`);
}
child.kill("SIGKILL");
await etcd.stop();
process.exit(0);
