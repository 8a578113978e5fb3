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
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { startCliAgent, type CliAgent } from "../agent/cli-agent.ts";
import { startContainerd, type ContainerdServer } from "../harness/containerd.ts";
import { buildBusyboxImage, type BuiltImage } from "../harness/images.ts";
import { runChecked } from "../../internal/network/exec.ts";
import { createNetnsServers, type NetnsServers } from "./netns-servers.ts";

let h: NetnsServers;
let ctrd: ContainerdServer;
let image: BuiltImage;
const agents: CliAgent[] = [];
let serverToken: string;
let agentToken: string;

const url = (s: string) => h.servers.get(s)!.url;

beforeAll(async () => {
  h = await createNetnsServers("skiff-servers-");
  [ctrd, image] = await Promise.all([startContainerd(), buildBusyboxImage(join(h.dir, "image"), { name: "skiff.test/busybox", tag: "v1" })]);

  await h.start("s1", 21, ["--cluster-init"]);
  const token = async (role: string) => {
    const r = await h.skiff(["token", "create", "--role", role, "--ttl", "1h", "--server", url("s1"), ...h.adminFlags()]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim();
  };
  serverToken = await token("server");
  agentToken = await token("agent");
}, 240_000);

afterAll(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  await h?.stop();
  await ctrd?.stop();
}, 120_000);

it("refuses an agent-role token for joining as a server, before any etcd member is added", async () => {
  const r = await h.skiff(["server", "--server", url("s1"), "--token", agentToken, "--data-dir", join(h.dir, "refused"), "--node-name", "refused", "--advertise-address", h.ipOf(1), "--disable-agent"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/permission_denied.*servers\/join/);
  expect(existsSync(join(h.dir, "refused", "etcd", "member"))).toBe(false);
  expect(await h.memberNames("s1")).toEqual(["s1"]);
}, 60_000);

it("three servers and two agents joined with tokens run a Deployment of 6 across the agents; removing a server leaves two members", async () => {
  // Each server joins through the one before it: any server serves joins.
  await h.start("s2", 22, ["--server", url("s1"), "--token", serverToken]);
  expect(readFileSync(h.servers.get("s2")!.logPath, "utf8")).toMatch(/the cluster has 2 servers/);
  await h.start("s3", 23, ["--server", url("s2"), "--token", serverToken]);
  expect(await h.memberNames("s1")).toEqual(["s1", "s2", "s3"]);

  const block = randomInt(16) * 16;
  for (const j of [1, 2]) {
    const netns = `${h.name}-a${j}`;
    const ip = h.ipOf(10 + j);
    await h.machine(netns, ip);
    await runChecked("ip", ["-n", netns, "route", "add", "unreachable", `10.233.${block}.0/20`]);
    const rootDir = join(h.dir, `a${j}`);
    agents.push(
      await startCliAgent(
        [
          "--server", url(j === 1 ? "s1" : "s3"), "--token", agentToken, "--data-dir", join(rootDir, "agent"),
          "--node-name", netns, "--node-ip", ip, "--hostname-override", netns, "--listen", `${ip}:10250`,
          "--containerd", ctrd.address, "--containerd-namespace", `${ctrd.namespace}-a${j}`, "--root-dir", rootDir,
          "--pod-cidr", `10.233.${block + j}.0/24`, "--cluster-cidr", `10.233.${block}.0/20`,
          "--cni-network", netns, "--cni-bridge", netns, "--import-images", image.tarPath, "--log-level", "info",
        ],
        join(h.dir, `${netns}.log`),
        120_000,
        { prefix: ["nsenter", `--net=/var/run/netns/${netns}`] },
      ),
    );
  }
  const transport = h.admin();
  const nodes = createResourceClient<Node>(transport, "Node");
  const agentNames = [1, 2].map((j) => `${h.name}-a${j}`);
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
  const s3 = h.servers.get("s3")!;
  const removed = await h.skiff(["server", "remove", "s3", "--server", url("s1"), ...h.adminFlags()]);
  expect(removed.code, removed.stderr).toBe(0);
  expect(removed.stdout).toMatch(/server s3 removed; etcd members now: s1, s2/);
  expect(await h.memberNames("s1")).toEqual(["s1", "s2"]);
  await waitFor(`server s3's process ends\n${h.logTail(s3.logPath)}`, async () => s3.proc.child.exitCode !== null, 60_000);
  expect(s3.proc.child.exitCode).toBe(0);
  expect(readFileSync(s3.logPath, "utf8")).toMatch(/etcd member was removed from the cluster/);
  h.servers.delete("s3");
}, 600_000);

it("a restarted server comes back as the same etcd member with its data, joining nothing", async () => {
  const s2 = h.servers.get("s2")!;
  await s2.proc.stop();
  h.servers.delete("s2");
  // The same command line as its first start (a systemd unit's): the data dir decides.
  const again = await h.start("s2", 22, ["--server", url("s1"), "--token", serverToken]);
  const log = readFileSync(again.logPath, "utf8");
  expect(log).toMatch(/etcd member exists: restarting it with its data \(no new join\)/);
  expect(log).not.toMatch(/joining the cluster as a server/);
  expect(await h.memberNames("s1")).toEqual(["s1", "s2"]);
  const deployments = createResourceClient<Deployment>(h.admin(), "Deployment");
  expect((await deployments.get("default", "web")).spec?.replicas).toBe(6);
}, 180_000);
