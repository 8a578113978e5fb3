// `skiff server` processes each in its own network namespace on one bridge of the run (the test
// process, in the host's, is the admin): what test/ha/servers.test.ts and server-reset.test.ts
// form their clusters with (agents get namespaces on the same bridge through `machine`).
//
//   host: bridge <run> 10.232.S.1
//     └─ netns <run>-<s> 10.232.S.<host>  skiff server … (etcd :2379/:2380, apiserver :6443)
import { existsSync, readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createApiTransport } from "../../internal/client/transport.ts";
import { run, runChecked, type RunResult } from "../../internal/network/exec.ts";
import { createNetns } from "../../internal/network/netns.ts";
import { createEtcdMembers } from "../../internal/serverjoin/members.ts";
import { removeRun, runName, sweepCrashedRuns } from "../network/leftovers.ts";
import { freeHostSubnet } from "../harness/host-subnet.ts";
import { startGuardedProcess, type GuardedProcess } from "../harness/process.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";

const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));

export interface ServerProc {
  name: string;
  ip: string;
  url: string;
  dataDir: string;
  logPath: string;
  proc: GuardedProcess;
}

export interface NetnsServers {
  /** The run's name: its bridge, and the prefix of every namespace. */
  name: string;
  dir: string;
  servers: Map<string, ServerProc>;
  ipOf(host: number): string;
  /** A network namespace on the run's bridge with address `ip`, its default route via the bridge. */
  machine(netns: string, ip: string): Promise<void>;
  /** `skiff server <args>` as server `s` (its netns made on first use); resolves once its apiserver is ready. */
  start(s: string, host: number, args: string[]): Promise<ServerProc>;
  /** The same command line, run to its end (for a start that must fail). */
  startToEnd(s: string, host: number, args: string[]): Promise<RunResult>;
  /** `skiff <args>` inside server `s`'s netns. */
  skiffIn(s: string, args: string[]): Promise<RunResult>;
  /** `skiff <args>` in the host's netns. */
  skiff(args: string[]): Promise<RunResult>;
  /** Admin flags and transport from s1's PKI (every server shares its CA). */
  adminFlags(): string[];
  admin(servers?: string[]): ReturnType<typeof createApiTransport>;
  /** etcd's member names, asked of server `s`'s member. */
  memberNames(s: string): Promise<string[]>;
  logTail(path: string, lines?: number): string;
  stop(): Promise<void>;
}

export async function createNetnsServers(prefix: string): Promise<NetnsServers> {
  await sweepCrashedRuns();
  const name = runName();
  const dir = makeTempDir(prefix);
  const subnet = await freeHostSubnet();
  const ipOf = (host: number) => `10.232.${subnet}.${host}`;
  await runChecked("ip", ["link", "add", name, "type", "bridge"]);
  await runChecked("ip", ["addr", "add", `${ipOf(1)}/24`, "dev", name]);
  await runChecked("ip", ["link", "set", name, "up"]);
  const servers = new Map<string, ServerProc>();
  const pki = (s: string, file: string) => join(dir, s, "pki", file);

  async function machine(netns: string, ip: string): Promise<void> {
    const veth = netns.replace(/-/g, "");
    await createNetns(netns);
    await runChecked("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
    await runChecked("ip", ["link", "set", veth, "master", name, "up"]);
    await runChecked("ip", ["-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
    await runChecked("ip", ["-n", netns, "link", "set", "eth0", "up"]);
    await runChecked("ip", ["-n", netns, "route", "add", "default", "via", ipOf(1)]);
  }
  async function commandOf(s: string, host: number, args: string[]) {
    const ip = ipOf(host);
    const netns = `${name}-${s}`;
    if (!existsSync(`/var/run/netns/${netns}`)) await machine(netns, ip);
    const flags = [
      "--data-dir", join(dir, s), "--node-name", s, "--advertise-address", ip, "--listen", `${ip}:6443`, "--disable-agent",
      "--etcd-disable-snapshots", "--log-level", "info", ...args,
    ];
    return { ip, netns, argv: ["nsenter", `--net=/var/run/netns/${netns}`, process.execPath, SKIFF, "server", ...flags] };
  }
  const env = { ...process.env, NO_COLOR: "1", SKIFF_LOG_FORMAT: "json" };

  return {
    name,
    dir,
    servers,
    ipOf,
    machine,
    async start(s, host, args) {
      const { ip, argv } = await commandOf(s, host, args);
      const logPath = join(dir, `${s}-${Date.now()}.log`);
      const url = `https://${ip}:6443`;
      let proc: GuardedProcess;
      try {
        proc = await startGuardedProcess({
          command: "sh",
          args: ["-c", 'exec "$0" "$@" 2>>"$SKIFF_TEST_SERVER_LOG"', ...argv],
          env: { ...env, SKIFF_TEST_SERVER_LOG: logPath },
          name: `skiff server ${s}`,
          timeoutMs: 120_000,
          ready: () => ready(url),
        });
      } catch (err) {
        throw new Error(`${(err as Error).message}\nits log:\n${logTail(logPath)}`, { cause: err });
      }
      const sp = { name: s, ip, url, dataDir: join(dir, s), logPath, proc };
      servers.set(s, sp);
      return sp;
    },
    async startToEnd(s, host, args) {
      const { argv } = await commandOf(s, host, args);
      return run(argv[0], argv.slice(1), { env, timeoutMs: 180_000 });
    },
    skiffIn: (s, args) => run("nsenter", [`--net=/var/run/netns/${name}-${s}`, process.execPath, SKIFF, ...args], { env, timeoutMs: 120_000 }),
    skiff: (args) => run(process.execPath, [SKIFF, ...args], { env, timeoutMs: 120_000 }),
    adminFlags: () => ["--certificate-authority", pki("s1", "ca.crt"), "--client-certificate", pki("s1", "admin.crt"), "--client-key", pki("s1", "admin.key")],
    admin: (only) =>
      createApiTransport(
        [...servers.values()].filter((s) => !only || only.includes(s.name)).map((s) => s.url),
        { ca: readFileSync(pki("s1", "ca.crt")), cert: readFileSync(pki("s1", "admin.crt")), key: readFileSync(pki("s1", "admin.key")) },
      ),
    async memberNames(s) {
      const members = createEtcdMembers({
        endpoints: [`https://${servers.get(s)!.ip}:2379`],
        tls: { ca: readFileSync(pki(s, "etcd-ca.crt")), cert: readFileSync(pki(s, "etcd-client.crt")), key: readFileSync(pki(s, "etcd-client.key")) },
      });
      try {
        return (await members.list()).map((m) => m.name).sort();
      } finally {
        members.close();
      }
    },
    logTail,
    async stop() {
      // All at once: each keeps its etcd up until its own components have stopped.
      await Promise.all([...servers.values()].map((s) => s.proc.stop().catch(() => undefined)));
      await removeRun(name);
      removeTempDir(dir);
    },
  };
}

/** GET /readyz (open to anyone); the certificate is not what this checks. */
function ready(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(new URL("/readyz", url), { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });
}

function logTail(path: string, lines = 30): string {
  return existsSync(path) ? readFileSync(path, "utf8").split("\n").slice(-lines).join("\n") : "";
}
