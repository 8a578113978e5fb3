// A highly available control plane formed only the way a user forms one: three `skiff server`
// processes (the first --cluster-init, the others joining with a server-role token) and two
// `skiff agent` processes joining with an agent-role token, each in its own network namespace on
// one shared bridge (the test process, in the host's, is the admin). Real etcd members with peer
// TLS, real containerd, real pods. One cluster for every case:
//
//   - an agent-role token used with `skiff server` is refused (PERMISSION_DENIED), no member added;
//   - etcd's member list names the three servers; a Deployment of 6 runs across both agents;
//   - `skiff server remove` leaves two members, and the removed server's process ends on its own;
//   - a restarted server comes back with its etcd data (same member, no new join).
//
//   host: bridge <run> 10.232.S.1 (test process: admin, `skiff token create`, `skiff server remove`)
//     ├─ netns <run>-s1 10.232.S.21  skiff server --cluster-init (etcd :2379/:2380, apiserver :6443)
//     ├─ netns <run>-s2 10.232.S.22  skiff server --server https://10.232.S.21:6443 --token K10…
//     ├─ netns <run>-s3 10.232.S.23  skiff server --server https://10.232.S.22:6443 --token K10…
//     ├─ netns <run>-a1 10.232.S.11  skiff agent --server https://10.232.S.21:6443 --token K10…
//     └─ netns <run>-a2 10.232.S.12  skiff agent …
import { create } from "@bufbuild/protobuf";
import { randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { createNetns } from "../../internal/network/netns.ts";
import { createEtcdMembers } from "../../internal/serverjoin/members.ts";
import { startCliAgent, type CliAgent } from "../agent/cli-agent.ts";
import { removeRun, runName, sweepCrashedRuns } from "../network/leftovers.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { startGuardedProcess, type GuardedProcess } from "../harness/process.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";

const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));

interface ServerProc {
  name: string;
  ip: string;
  url: string;
  dataDir: string;
  logPath: string;
  proc: GuardedProcess;
}

let name: string;
let dir: string;
let subnet: number;
let ctrd: ContainerdServer;
let image: BuiltImage;
const servers = new Map<string, ServerProc>();
const agents: CliAgent[] = [];
let serverToken: string;
let agentToken: string;

const ipOf = (host: number) => `10.232.${subnet}.${host}`;
const pkiOf = (s: string) => join(dir, s, "pki");
const adminFlags = () => ["--certificate-authority", join(pkiOf("s1"), "ca.crt"), "--client-certificate", join(pkiOf("s1"), "admin.crt"), "--client-key", join(pkiOf("s1"), "admin.key")];
const admin = () => createApiTransport([...servers.values()].map((s) => s.url), { ca: readFileSync(join(pkiOf("s1"), "ca.crt")), cert: readFileSync(join(pkiOf("s1"), "admin.crt")), key: readFileSync(join(pkiOf("s1"), "admin.key")) });

/** A /24 in 10.232.0.0/16 no host route touches. */
async function freeHostSubnet(): Promise<number> {
  const routes = (await runChecked("ip", ["-4", "route", "show", "table", "all"])).stdout;
  for (let i = 0; i < 50; i++) {
    const third = randomInt(256);
    if (!routes.includes(`10.232.${third}.`)) return third;
  }
  throw new Error("no free /24 in 10.232.0.0/16");
}

/** A network namespace on the run's bridge with address `ip`. */
async function machine(netns: string, ip: string): Promise<void> {
  const veth = netns.replace(/-/g, "");
  await createNetns(netns);
  await runChecked("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]);
  await runChecked("ip", ["link", "set", veth, "master", name, "up"]);
  await runChecked("ip", ["-n", netns, "addr", "add", `${ip}/24`, "dev", "eth0"]);
  await runChecked("ip", ["-n", netns, "link", "set", "eth0", "up"]);
  await runChecked("ip", ["-n", netns, "route", "add", "default", "via", ipOf(1)]);
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

/** `skiff server <args>` in server `s`'s netns, its log in a file; resolves once its apiserver is ready. */
async function startServer(s: string, host: number, args: string[]): Promise<ServerProc> {
  const ip = ipOf(host);
  const netns = `${name}-${s}`;
  if (!existsSync(`/var/run/netns/${netns}`)) await machine(netns, ip);
  const logPath = join(dir, `${s}-${Date.now()}.log`);
  const url = `https://${ip}:6443`;
  const dataDir = join(dir, s);
  const flags = [
    "--data-dir", dataDir, "--node-name", s, "--advertise-address", ip, "--listen", `${ip}:6443`, "--disable-agent",
    "--etcd-disable-snapshots", "--log-level", "info", ...args,
  ];
  let proc: GuardedProcess;
  try {
    proc = await startGuardedProcess({
      command: "sh",
      args: ["-c", 'exec "$0" "$@" 2>>"$SKIFF_TEST_SERVER_LOG"', "nsenter", `--net=/var/run/netns/${netns}`, process.execPath, SKIFF, "server", ...flags],
      env: { ...process.env, SKIFF_TEST_SERVER_LOG: logPath, SKIFF_LOG_FORMAT: "json" },
      name: `skiff server ${s}`,
      timeoutMs: 120_000,
      ready: () => ready(url),
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nits log:\n${logTail(logPath)}`, { cause: err });
  }
  const sp = { name: s, ip, url, dataDir, logPath, proc };
  servers.set(s, sp);
  return sp;
}

async function skiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [SKIFF, ...args], { env: { ...process.env, NO_COLOR: "1" } });
}

async function memberNames(): Promise<string[]> {
  const s1 = pkiOf("s1");
  const members = createEtcdMembers({
    endpoints: [`https://${ipOf(21)}:2379`],
    tls: { ca: readFileSync(join(s1, "etcd-ca.crt")), cert: readFileSync(join(s1, "etcd-client.crt")), key: readFileSync(join(s1, "etcd-client.key")) },
  });
  try {
    return (await members.list()).map((m) => m.name).sort();
  } finally {
    members.close();
  }
}

beforeAll(async () => {
  await sweepCrashedRuns();
  name = runName();
  dir = makeTempDir("skiff-servers-");
  subnet = await freeHostSubnet();
  await runChecked("ip", ["link", "add", name, "type", "bridge"]);
  await runChecked("ip", ["addr", "add", `${ipOf(1)}/24`, "dev", name]);
  await runChecked("ip", ["link", "set", name, "up"]);
  [ctrd, image] = await Promise.all([startContainerd(), buildBusyboxImage(join(dir, "image"), { name: "skiff.test/busybox", tag: "v1" })]);

  await startServer("s1", 21, ["--cluster-init"]);
  const token = async (role: string) => {
    const r = await skiff(["token", "create", "--role", role, "--ttl", "1h", "--server", servers.get("s1")!.url, ...adminFlags()]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim();
  };
  serverToken = await token("server");
  agentToken = await token("agent");
}, 240_000);

afterAll(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  // All at once: each keeps its etcd up until its own components have stopped.
  await Promise.all([...servers.values()].map((s) => s.proc.stop().catch(() => undefined)));
  await ctrd?.stop();
  if (name) await removeRun(name);
  if (dir) removeTempDir(dir);
}, 120_000);

it("refuses an agent-role token for joining as a server, before any etcd member is added", async () => {
  const r = await skiff(["server", "--server", servers.get("s1")!.url, "--token", agentToken, "--data-dir", join(dir, "refused"), "--node-name", "refused", "--advertise-address", ipOf(1), "--disable-agent"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/permission_denied.*servers\/join/);
  expect(existsSync(join(dir, "refused", "etcd", "member"))).toBe(false);
  expect(await memberNames()).toEqual(["s1"]);
}, 60_000);

it("three servers and two agents joined with tokens run a Deployment of 6 across the agents; removing a server leaves two members", async () => {
  // Each server joins through the one before it: any server serves joins.
  await startServer("s2", 22, ["--server", servers.get("s1")!.url, "--token", serverToken]);
  expect(readFileSync(servers.get("s2")!.logPath, "utf8")).toMatch(/the cluster has 2 servers/);
  await startServer("s3", 23, ["--server", servers.get("s2")!.url, "--token", serverToken]);
  expect(await memberNames()).toEqual(["s1", "s2", "s3"]);

  const block = randomInt(16) * 16;
  for (const j of [1, 2]) {
    const netns = `${name}-a${j}`;
    const ip = ipOf(10 + j);
    await machine(netns, ip);
    await runChecked("ip", ["-n", netns, "route", "add", "unreachable", `10.233.${block}.0/20`]);
    const rootDir = join(dir, `a${j}`);
    agents.push(
      await startCliAgent(
        [
          "--server", servers.get(j === 1 ? "s1" : "s3")!.url, "--token", agentToken, "--data-dir", join(rootDir, "agent"),
          "--node-name", netns, "--node-ip", ip, "--hostname-override", netns, "--listen", `${ip}:10250`,
          "--containerd", ctrd.address, "--containerd-namespace", `${ctrd.namespace}-a${j}`, "--root-dir", rootDir,
          "--pod-cidr", `10.233.${block + j}.0/24`, "--cluster-cidr", `10.233.${block}.0/20`,
          "--cni-network", netns, "--cni-bridge", netns, "--import-images", image.tarPath, "--log-level", "info",
        ],
        join(dir, `${netns}.log`),
        120_000,
        { prefix: ["nsenter", `--net=/var/run/netns/${netns}`] },
      ),
    );
  }
  const transport = admin();
  const nodes = createResourceClient<Node>(transport, "Node");
  const agentNames = [1, 2].map((j) => `${name}-a${j}`);
  await waitFor("both agents' Nodes Ready", async () => {
    const items = (await nodes.list("")).items.filter((n) => n.status?.conditions.some((c) => c.type === "Ready" && c.status === "True"));
    return agentNames.every((a) => items.some((n) => n.metadata?.name === a));
  }, 120_000);

  const labels = { app: "web" };
  await createResourceClient<Deployment>(transport, "Deployment").create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: 6, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: "app", image: image.ref, imagePullPolicy: "Never" }] } } },
    }),
  );
  const pods = createResourceClient<Pod>(transport, "Pod");
  const running = await waitFor("6 Running pods of web", async () => {
    const items = (await pods.list("default", { labelSelector: "app=web" })).items.filter((p) => p.status?.phase === "Running");
    return items.length === 6 ? items : undefined;
  }, 240_000);
  expect(new Set(running.map((p) => p.spec!.nodeName))).toEqual(new Set(agentNames));

  // Removal: etcd's member goes, and the removed server stops on its own (its etcd has left).
  const s3 = servers.get("s3")!;
  const removed = await skiff(["server", "remove", "s3", "--server", servers.get("s1")!.url, ...adminFlags()]);
  expect(removed.code, removed.stderr).toBe(0);
  expect(removed.stdout).toMatch(/server s3 removed; etcd members now: s1, s2/);
  expect(await memberNames()).toEqual(["s1", "s2"]);
  await waitFor(`server s3's process ends\n${logTail(s3.logPath)}`, async () => s3.proc.child.exitCode !== null, 60_000);
  expect(s3.proc.child.exitCode).toBe(0);
  expect(readFileSync(s3.logPath, "utf8")).toMatch(/etcd member was removed from the cluster/);
  servers.delete("s3");
}, 600_000);

it("a restarted server comes back as the same etcd member with its data, joining nothing", async () => {
  const s2 = servers.get("s2")!;
  await s2.proc.stop();
  servers.delete("s2");
  // The same command line as its first start (a systemd unit's): the data dir decides.
  const again = await startServer("s2", 22, ["--server", servers.get("s1")!.url, "--token", serverToken]);
  const log = readFileSync(again.logPath, "utf8");
  expect(log).toMatch(/etcd member exists: restarting it with its data \(no new join\)/);
  expect(log).not.toMatch(/joining the cluster as a server/);
  expect(await memberNames()).toEqual(["s1", "s2"]);
  const deployments = createResourceClient<Deployment>(admin(), "Deployment");
  expect((await deployments.get("default", "web")).spec?.replicas).toBe(6);
}, 180_000);
