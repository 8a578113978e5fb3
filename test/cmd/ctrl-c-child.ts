// Started by etcd-process.test.ts in a process group of its own, as a terminal runs `skiff up`:
// starts etcd the way `skiff up` does, and on SIGINT (Ctrl-C reaches the whole group) reports
// whether etcd still serves while we shut down, as the controllers' lease release needs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEtcdProcess } from "../../internal/cmd/etcd-process.ts";
import { ensurePki } from "../../internal/pki/pki.ts";

const [clientPort, peerPort, metricsPort] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), "skiff-ctrl-c-"));
const pki = await ensurePki(join(dir, "pki"), { nodeAddresses: [] });
const tls = { certFile: pki.files("etcd-server").cert, keyFile: pki.files("etcd-server").key, trustedCaFile: pki.files("ca").cert };
const etcd = await startEtcdProcess(dir, clientPort, peerPort, tls, metricsPort);
process.on("SIGINT", () => {
  void (async () => {
    await new Promise((r) => setTimeout(r, 300)); // what a SIGINT to etcd would have done by now
    const healthy = await fetch(etcd.healthUrl, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`${JSON.stringify({ healthy })}\n`);
    process.exit(0);
  })();
});
process.stdout.write("ready\n");
