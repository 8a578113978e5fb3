// `npm run bench -- etcd-leader`: what a kill -9 of the etcd leader costs the cluster.
//
// Three etcd members (client and peer TLS, test/harness/etcd.ts), an apiserver per member (a
// `skiff apiserver` child given all three etcd URLs, its own first), one scheduler and one
// controller-manager (children, leader-elected, given every apiserver), a Node object that
// reports Ready (nothing runs the pods: only scheduling and the controllers are measured) and a
// ReplicaSet. Each round kills the etcd leader (its apiserver stays up and must move to another
// member) and measures from the kill:
//   write      the first successful ConfigMap update through the apiserver beside the dead member;
//   scheduler  a pod created after the kill is bound to the node;
//   controllers the ReplicaSet, scaled up after the kill, has created its new pod.
// Then the member is started again and the cluster given time to settle before the next round.
import { create } from "@bufbuild/protobuf";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ConfigMapSchema, type ConfigMap } from "../gen/skiff/v1alpha1/config_pb.js";
import { NodeSchema, type Node } from "../gen/skiff/v1alpha1/node_pb.js";
import { PodSchema, type Pod } from "../gen/skiff/v1alpha1/pod_pb.js";
import { ReplicaSetSchema, type ReplicaSet } from "../gen/skiff/v1alpha1/replica_set_pb.js";
import { createResourceClient } from "../internal/client/resource-client.ts";
import type { FailoverTransport } from "../internal/client/failover.ts";
import { createApiTransport } from "../internal/client/transport.ts";
import { startEtcdCluster } from "../test/harness/etcd.ts";
import { apiserverTlsArgs, pkiFileArgs, testPki } from "../test/harness/pki.ts";
import { freePorts, LOOPBACK } from "../test/harness/ports.ts";
import { startSkiff, waitReady, type Daemon } from "./lib/child.ts";
import { onCleanup } from "./lib/cleanup.ts";
import { ETCD_PREFIX } from "./lib/control-plane.ts";
import { sleep, summarize } from "./lib/stats.ts";
import { fmtMs, renderTable } from "./lib/table.ts";
import { untilServed } from "./lib/until-served.ts";

const options = {
  rounds: { type: "string", default: "5" },
  "lease-duration": { type: "string", default: "15" },
  help: { type: "boolean", short: "h", default: false },
} as const;

const help = `usage: npm run bench -- etcd-leader [options]

  --rounds N            etcd leader kills (default 5)
  --lease-duration S    the controller-manager's leader-election lease, seconds (default 15,
                        the scheduler's fixed default); the components' target is this + 2 s`;

const WRITE_TARGET_MS = 3000;

/** Retries `op` while the cluster answers "not now"; any other error ends the benchmark. */
const untilDone = async <T>(op: () => Promise<T>): Promise<T> => (await untilServed(op)).value;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log(help);
    return;
  }
  const rounds = Number(values.rounds);
  const leaseS = Number(values["lease-duration"]);
  if (!(rounds >= 1) || !(leaseS >= 3)) throw new RangeError("--rounds must be at least 1 and --lease-duration at least 3");
  const componentTargetMs = leaseS * 1000 + 2000;
  const pki = await testPki();
  const etcd = await startEtcdCluster();
  onCleanup(() => etcd.stop());
  const ports = await freePorts(3);
  const urls = ports.map((p) => `https://${LOOPBACK}:${p}`);
  const apiservers: Daemon[] = [];
  for (let i = 0; i < 3; i++) {
    const own = [...etcd.endpoints.slice(i), ...etcd.endpoints.slice(0, i)].join(",");
    const d = startSkiff(["apiserver", "--etcd-servers", own, "--etcd-prefix", ETCD_PREFIX, "--listen", `${LOOPBACK}:${ports[i]}`, "--endpoint-reconciler-type", "lease", "--log-level", "warn", ...apiserverTlsArgs(pki)]);
    apiservers.push(d);
  }
  await Promise.all(apiservers.map((d, i) => waitReady(`${urls[i]}/readyz`, d, 60_000)));
  const server = ["--server", urls.join(",")];
  const scheduler = startSkiff(["scheduler", ...server, ...pkiFileArgs(pki, "scheduler"), "--backoff-initial", "200", "--backoff-max", "2000", "--metrics-listen", "off", "--log-level", "warn"]);
  const controllerManager = startSkiff([
    "controller-manager", ...server, ...pkiFileArgs(pki, "controller-manager"),
    "--leader-elect-lease-duration", `${leaseS}s`, "--leader-elect-renew-deadline", `${Math.max(2, leaseS - 5)}s`,
    "--node-monitor-grace-period", "1h", "--metrics-listen", "off", "--log-level", "warn",
  ]);

  const admin = createApiTransport(urls, pki.adminCredentials);
  const nodes = createResourceClient<Node>(admin, "Node");
  const pods = createResourceClient<Pod>(admin, "Pod");
  const replicaSets = createResourceClient<ReplicaSet>(admin, "ReplicaSet");
  const node = await nodes.create(create(NodeSchema, { metadata: { name: "bench-node" } }));
  node.status = create(NodeSchema, {
    status: {
      allocatable: { pods: "1000", cpu: "1000", memory: "1000Gi" },
      capacity: { pods: "1000", cpu: "1000", memory: "1000Gi" },
      conditions: [{ type: "Ready", status: "True", reason: "Bench", lastHeartbeatTime: { seconds: BigInt(Math.floor(Date.now() / 1000)) } }],
    },
  }).status;
  await nodes.updateStatus(node);
  const container = { name: "c", image: "skiff.bench/none:v1" };
  await replicaSets.create(
    create(ReplicaSetSchema, {
      metadata: { name: "bench", namespace: "default" },
      spec: { replicas: 1, selector: { matchLabels: { app: "bench" } }, template: { metadata: { labels: { app: "bench" } }, spec: { containers: [container] } } },
    }),
  );
  const rsPods = async () => (await pods.list("default", { labelSelector: "app=bench" })).items.length;
  const waitUntil = async (what: string, pred: () => Promise<boolean>, ms = 120_000) => {
    const deadline = performance.now() + ms;
    while (!(await pred().catch(() => false))) {
      if (performance.now() > deadline) throw new Error(`${what}: not after ${ms} ms\nscheduler:\n${scheduler.output()}\ncontroller-manager:\n${controllerManager.output()}`);
      await sleep(20);
    }
  };
  await waitUntil("the ReplicaSet's first pod (the controller-manager leads)", async () => (await rsPods()) === 1);
  const warm = await pods.create(create(PodSchema, { metadata: { name: "warm", namespace: "default" }, spec: { containers: [container] } }));
  await waitUntil("the first pod scheduled (the scheduler leads)", async () => (await pods.get("default", warm.metadata!.name)).spec?.nodeName === "bench-node");

  const rows: string[][] = [];
  const toWrite: number[] = [];
  const toSchedule: number[] = [];
  const toControl: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const leader = await etcd.leader();
    // The client writes through the apiserver beside the leader: its storage must leave the dead member.
    const beside = createApiTransport([...urls.slice(leader.index), ...urls.slice(0, leader.index)], pki.adminCredentials) as FailoverTransport;
    const cms = createResourceClient<ConfigMap>(beside, "ConfigMap");
    const probe = `probe-${r}`;
    await untilDone(() => cms.create(create(ConfigMapSchema, { metadata: { name: probe, namespace: "default" }, data: { n: "0" } })));
    const want = (await rsPods()) + 1;

    const killedAt = performance.now();
    await etcd.kill9(leader);
    let n = 0;
    await untilDone(async () => {
      const cm = await cms.get("default", probe, { timeoutMs: 5000 });
      cm.data.n = String(++n);
      await cms.update(cm, { timeoutMs: 5000 });
    });
    const wroteAt = performance.now();
    const [scheduledAt, controlledAt] = await Promise.all([
      (async () => {
        const p = await untilDone(() => pods.create(create(PodSchema, { metadata: { name: `after-kill-${r}`, namespace: "default" }, spec: { containers: [container] } })));
        await waitUntil(`round ${r}: pod ${p.metadata!.name} scheduled`, async () => !!(await pods.get("default", p.metadata!.name)).spec?.nodeName);
        return performance.now();
      })(),
      (async () => {
        await untilDone(async () => {
          const rs = await replicaSets.get("default", "bench");
          rs.spec!.replicas = want;
          await replicaSets.update(rs);
        });
        await waitUntil(`round ${r}: the ReplicaSet's pod ${want}`, async () => (await rsPods()) >= want);
        return performance.now();
      })(),
    ]);
    const newLeader = await etcd.leader();
    toWrite.push(wroteAt - killedAt);
    toSchedule.push(scheduledAt - killedAt);
    toControl.push(controlledAt - killedAt);
    rows.push([String(r), `${leader.name} → ${newLeader.name}`, fmtMs(wroteAt - killedAt), fmtMs(scheduledAt - killedAt), fmtMs(controlledAt - killedAt)]);
    beside.close();
    await etcd.restart(leader);
    await etcd.leader(); // all three agree on a leader again
    await sleep(2000);
  }

  console.log(`\netcd leader kill -9 → the cluster acting again (${rounds} rounds; 3 members, 3 apiservers, 1 scheduler, 1 controller-manager; TLS)\n`);
  console.log(renderTable(["round", "etcd leader", "first write ms", "pod scheduled ms", "RS pod created ms"], rows, "  "));
  const verdict = (xs: number[], target: number) => {
    const s = summarize(xs);
    return [fmtMs(s.p50), fmtMs(s.max), `${fmtMs(target)}`, s.max <= target ? "met" : "NOT met"];
  };
  console.log("");
  console.log(
    renderTable(
      ["from the kill to", "p50 ms", "max ms", "target ms", "target (every round)"],
      [
        ["first successful write", ...verdict(toWrite, WRITE_TARGET_MS)],
        ["scheduler acting (pod bound)", ...verdict(toSchedule, componentTargetMs)],
        ["controller-manager acting (RS pod)", ...verdict(toControl, componentTargetMs)],
      ],
      "  ",
    ),
  );
  console.log(`  targets: write ≤ 3 s (etcd's election timeout is 1 s); components ≤ lease duration (${leaseS} s) + 2 s`);
}
