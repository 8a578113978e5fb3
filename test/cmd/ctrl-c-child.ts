// Started by etcd-process.test.ts in a process group of its own, as a terminal runs `skiff up`:
// starts etcd the way `skiff up` does, and on SIGINT (Ctrl-C reaches the whole group) reports
// whether etcd still serves while we shut down, as the controllers' lease release needs.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEtcdProcess } from "../../internal/cmd/etcd-process.ts";

const [clientPort, peerPort] = process.argv.slice(2).map(Number);
const dir = mkdtempSync(join(tmpdir(), "skiff-ctrl-c-"));
const etcd = await startEtcdProcess(dir, clientPort, peerPort);
process.on("SIGINT", () => {
  void (async () => {
    await new Promise((r) => setTimeout(r, 300)); // what a SIGINT to etcd would have done by now
    const healthy = await fetch(`${etcd.endpoint}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    await etcd.stop();
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write(`${JSON.stringify({ healthy })}\n`);
    process.exit(0);
  })();
});
process.stdout.write("ready\n");
