// Control-plane components as child processes (`node cmd/skiff.ts <component> …`) for the chaos
// tests, so that they can be killed with SIGKILL and started again with the same flags. Each runs
// under startGuardedProcess (its own process group: a kill -9 of the group takes the component and
// its wrapper, nothing of the component's clean-up runs; a dying test run stops them). Logs (JSON)
// are appended to a file per component.
//
// takeOverApiServer() moves a multinode cluster's apiserver out of the test process: it closes the
// in-process one and starts `skiff apiserver` on the same address, etcd, prefix and PKI, so the
// agents (which know only that URL) now talk to a process the test can kill.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MultiNodeCluster } from "../harness/multinode.ts";
import { apiserverTlsArgs, getTls, nodeSignerArgs, pkiFileArgs, servingTlsFor } from "../harness/pki.ts";
import { startGuardedProcess, type GuardedProcess } from "../harness/process.ts";

const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));

export interface Component {
  name: string;
  /** kill -9 (the whole process group); resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again with the same flags; resolves once it is ready. */
  start(): Promise<void>;
  stop(): Promise<void>;
  logTail(lines?: number): string;
}

export function startComponent(name: string, args: string[], logPath: string, ready: () => Promise<boolean> = async () => true): Component {
  let proc: GuardedProcess | undefined;
  const launch = async () => {
    proc = await startGuardedProcess({
      command: "sh",
      args: ["-c", 'exec "$0" "$@" 2>>"$SKIFF_CHAOS_LOG"', process.execPath, SKIFF, ...args],
      env: { ...process.env, SKIFF_CHAOS_LOG: logPath, SKIFF_LOG_FORMAT: "json" },
      name: `skiff ${name}`,
      timeoutMs: 60_000,
      ready,
    });
  };
  return {
    name,
    async kill() {
      const p = proc;
      proc = undefined;
      if (p?.child.pid !== undefined) process.kill(-p.child.pid, "SIGKILL");
      await p?.stop(); // already exited: only the guard's bookkeeping
    },
    start: launch,
    async stop() {
      const p = proc;
      proc = undefined;
      await p?.stop();
    },
    logTail(lines = 30) {
      try {
        return readFileSync(logPath, "utf8").split("\n").slice(-lines).join("\n");
      } catch {
        return "";
      }
    },
  };
}

/** Starts the scheduler, the controller-manager (extra flags: `cmArgs`) and takes over the apiserver, all as child processes. */
export async function startChildControlPlane(c: MultiNodeCluster, cmArgs: string[] = []): Promise<Record<"apiserver" | "scheduler" | "controller-manager", Component>> {
  const dir = join(c.dir, "chaos");
  mkdirSync(dir, { recursive: true });
  const url = new URL(c.cp.server.url);
  const serving = await servingTlsFor(c.cp.pki, [c.bridgeIP]);
  writeFileSync(join(dir, "serving.crt"), serving.cert);
  writeFileSync(join(dir, "serving.key"), serving.key, { mode: 0o600 });
  // It signs the certificates of agents that join (or renew) with the cluster's CA, as the in-process one did.
  const tls = [...apiserverTlsArgs(c.cp.pki), ...nodeSignerArgs(c.cp.pki)];
  const at = (flag: string) => tls.indexOf(flag) + 1;
  tls[at("--tls-cert-file")] = join(dir, "serving.crt");
  tls[at("--tls-private-key-file")] = join(dir, "serving.key");
  const apiserver = startComponent(
    "apiserver",
    ["apiserver", "--etcd-servers", c.cp.etcd.endpoint, "--etcd-prefix", "/skiff-test", "--listen", url.host, "--log-level", "warn", ...tls],
    join(dir, "apiserver.log"),
    async () => (await getTls(`${c.cp.server.url}/readyz`, { ca: c.cp.pki.ca.cert })).status === 200,
  );
  await c.cp.server.close();
  await apiserver.start();

  const server = ["--server", c.cp.server.url];
  const scheduler = startComponent(
    "scheduler",
    ["scheduler", ...server, ...pkiFileArgs(c.cp.pki, "scheduler"), "--leader-elect", "false", "--backoff-initial", "200", "--backoff-max", "2000", "--log-level", "warn"],
    join(dir, "scheduler.log"),
  );
  const controllerManager = startComponent(
    "controller-manager",
    ["controller-manager", ...server, ...pkiFileArgs(c.cp.pki, "controller-manager"), "--leader-elect", "false", "--cluster-cidr", c.clusterCidr, "--log-level", "warn", ...cmArgs],
    join(dir, "controller-manager.log"),
  );
  await Promise.all([scheduler.start(), controllerManager.start()]);
  return { apiserver, scheduler, "controller-manager": controllerManager };
}
