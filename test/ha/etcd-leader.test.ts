// kill -9 of the etcd leader and of the apiserver beside it, in the middle of a rolling update.
// Three etcd members (peer TLS), an apiserver per member (`skiff apiserver`, a child process,
// given all three etcd URLs with its own first), two schedulers and two controller-managers
// (leader-elected child processes given every apiserver), one real node (containerd + runc + CNI).
// The rollout of a 10-replica Deployment completes; a sampling pod watcher never sees a ReplicaSet
// above its bound; a watcher of our own, through the apiservers with client failover, sees every
// one of a numbered series of ConfigMap updates written across the kill exactly once and in order.
// How long writes stopped is printed, not asserted (the benchmark measures it: bench/ha-etcd.ts).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ReplicaSet } from "../../gen/skiff/v1alpha1/replica_set_pb.js";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { createBoundWatcher } from "../chaos/bound-watcher.ts";
import { startComponent, type Component } from "../chaos/components.ts";
import type { EtcdCluster } from "../harness/etcd.ts";
import { startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { apiserverTlsArgs, getTls, pkiFileArgs, servingTlsFor } from "../harness/pki.ts";
import { freePorts } from "../harness/ports.ts";

const REPLICAS = 10;
const MAX_SURGE = 3; // the default 25 % of 10, rounded up

let c: MultiNodeCluster;
let etcd: EtcdCluster;
let apiservers: Component[] = [];
const others: Component[] = [];
let urls: string[] = [];

/** Every member's URL, `own` first: the apiserver beside a member prefers it. */
const etcdServersFor = (own: number) => [...etcd.endpoints.slice(own), ...etcd.endpoints.slice(0, own)].join(",");

beforeAll(async () => {
  c = await startMultiNode({ nodes: 1, etcdMembers: 3 });
  etcd = c.cp.etcdCluster!;
  const dir = join(c.dir, "etcd-leader");
  mkdirSync(dir, { recursive: true });
  const serving = await servingTlsFor(c.cp.pki, [c.bridgeIP]);
  writeFileSync(join(dir, "serving.crt"), serving.cert);
  writeFileSync(join(dir, "serving.key"), serving.key, { mode: 0o600 });
  const tls = apiserverTlsArgs(c.cp.pki);
  tls[tls.indexOf("--tls-cert-file") + 1] = join(dir, "serving.crt");
  tls[tls.indexOf("--tls-private-key-file") + 1] = join(dir, "serving.key");
  // The first apiserver takes over the in-process one's address (the agent starts knowing only that URL).
  const first = Number(new URL(c.cp.server.url).port);
  await c.cp.server.close();
  const ports = [first, ...(await freePorts(2))];
  urls = ports.map((p) => `https://${c.bridgeIP}:${p}`);
  apiservers = ports.map((port, i) =>
    startComponent(
      `apiserver-${i}`,
      ["apiserver", "--etcd-servers", etcdServersFor(i), "--etcd-prefix", "/skiff-test", "--listen", `${c.bridgeIP}:${port}`, "--endpoint-reconciler-type", "lease", "--log-level", "warn", ...tls],
      join(dir, `apiserver-${i}.log`),
      async () => (await getTls(`${urls[i]}/readyz`, { ca: c.cp.pki.ca.cert })).status === 200,
    ),
  );
  await Promise.all(apiservers.map((a) => a.start()));
  const server = ["--server", urls.join(",")];
  for (const i of [0, 1]) {
    others.push(
      startComponent(
        `scheduler-${i}`,
        ["scheduler", ...server, ...pkiFileArgs(c.cp.pki, "scheduler"), "--identity", `scheduler-${i}`, "--backoff-initial", "200", "--backoff-max", "2000", "--log-level", "warn"],
        join(dir, `scheduler-${i}.log`),
      ),
      startComponent(
        `controller-manager-${i}`,
        ["controller-manager", ...server, ...pkiFileArgs(c.cp.pki, "controller-manager"), "--identity", `controller-manager-${i}`, "--cluster-cidr", c.clusterCidr, "--log-level", "warn"],
        join(dir, `controller-manager-${i}.log`),
      ),
    );
  }
  await Promise.all(others.map((o) => o.start()));
}, 240_000);

afterAll(async () => {
  for (const comp of [...others, ...apiservers]) await comp.stop();
  await c?.stop();
});

const retryable = (err: unknown) => [Code.Unavailable, Code.Aborted, Code.DeadlineExceeded].includes(ConnectError.from(err).code);

it("kill -9 of the etcd leader and its apiserver mid-rollout: writes resume, the rollout completes within bounds, a watcher misses and repeats nothing", async () => {
  const admin = createApiTransport(urls, c.cp.pki.adminCredentials, { discover: true });
  const pods = createResourceClient<Pod>(admin, "Pod");
  const deployments = createResourceClient<Deployment>(admin, "Deployment");
  const replicaSets = createResourceClient<ReplicaSet>(admin, "ReplicaSet");
  const endpoints = createResourceClient<Endpoints>(admin, "Endpoints");
  const published = async () => (await endpoints.get("default", "kubernetes")).subsets.flatMap((s) => s.addresses.map((a) => `https://${a.ip}:${s.ports[0].port}`)).sort();
  await waitFor("all three apiservers in the kubernetes Endpoints", async () => JSON.stringify(await published()) === JSON.stringify([...urls].sort()), 60_000);
  await c.nodes[0].restartAgent(); // it learns the servers when it starts

  const rolledOut = async (generation: bigint) => {
    const s = (await deployments.get("default", "web").catch(() => undefined))?.status;
    return !!s && s.observedGeneration >= generation && s.updatedReplicas === REPLICAS && s.availableReplicas === REPLICAS && s.replicas === REPLICAS;
  };
  const bounds = createBoundWatcher(pods, "app=web");
  await bounds.ready;
  const template = c.pod(undefined, "x").spec!;
  template.containers[0].command = ["sleep", "3600"];
  template.terminationGracePeriodSeconds = 1n;
  const d = await deployments.create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: REPLICAS, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: template } },
    }),
  );
  await waitFor("the first 10 replicas available", () => rolledOut(d.metadata!.generation), 180_000);

  // A numbered series of updates, written without pause by a writer that retries across the kill,
  // and a watcher of our own that resumes from its last resourceVersion (never relists). Both
  // start on the apiserver beside the etcd leader (the one to be killed): they must move.
  const leaderAtStart = await etcd.leader();
  const own = createApiTransport([...urls.slice(leaderAtStart.index), ...urls.slice(0, leaderAtStart.index)], c.cp.pki.adminCredentials, { discover: true });
  const cms = createResourceClient<ConfigMap>(own, "ConfigMap");
  await cms.create(create(ConfigMapSchema, { metadata: { name: "counter", namespace: "default" }, data: { seq: "0" } }));
  const seen: number[] = [];
  const stop = new AbortController(); // the watcher
  const stopWriting = new AbortController();
  let resumes = 0;
  const listed = await cms.list("default", { fieldSelector: "metadata.name=counter" });
  const watcher = (async () => {
    let rv = listed.resourceVersion;
    while (!stop.signal.aborted) {
      try {
        for await (const ev of cms.watch("default", { resourceVersion: rv, fieldSelector: "metadata.name=counter", signal: stop.signal })) {
          if (ev.object?.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
          if (ev.type === "MODIFIED") seen.push(Number(ev.object!.data.seq));
        }
      } catch (err) {
        if (stop.signal.aborted) return;
        if (ConnectError.from(err).code !== Code.Unavailable) throw err; // a relist would hide missed events
        resumes++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  let written = 0;
  let killedAt = 0;
  let firstWriteAfterKill = 0;
  const writer = (async () => {
    while (!stopWriting.signal.aborted) {
      const seq = written + 1;
      const startedAt = performance.now();
      try {
        const cm = await cms.get("default", "counter");
        // A write whose answer was lost may have landed: then it is done.
        if (Number(cm.data.seq) < seq) {
          cm.data.seq = String(seq);
          await cms.update(cm);
        }
        written = seq;
        // The first write both sent and answered after the kill.
        if (killedAt && startedAt > killedAt && !firstWriteAfterKill) firstWriteAfterKill = performance.now();
        await new Promise((r) => setTimeout(r, 20));
      } catch (err) {
        if (!retryable(err)) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  })();

  // The rollout, and mid-way the kill.
  bounds.setPhase("rollout with a kill -9 of the etcd leader and its apiserver");
  const before = (await deployments.get("default", "web"))!;
  before.spec!.template!.metadata!.annotations = { "test/revision": "2" };
  const generation = (await deployments.update(before)).metadata!.generation;
  await waitFor("the rollout to be under way", async () => {
    const newRs = (await replicaSets.list("default")).items.find((rs) => rs.spec?.template?.metadata?.annotations?.["test/revision"] === "2");
    const all = (await pods.list("default", { labelSelector: "app=web" })).items;
    const ofNew = all.filter((p) => p.metadata!.ownerReferences[0]?.name === newRs?.metadata?.name).length;
    return !!newRs && ofNew >= 2 && all.length > ofNew;
  }, 90_000);
  expect(await rolledOut(generation), "the rollout was still under way at the kill").toBe(false);
  const leader = await etcd.leader();
  const writesBefore = written;
  killedAt = performance.now();
  await Promise.all([etcd.kill9(leader), apiservers[leader.index].kill()]);
  const newLeader = await etcd.leader();
  expect(newLeader.name).not.toBe(leader.name);

  await waitFor("the rollout to complete after the kill", () => rolledOut(generation), 180_000);
  await waitFor("only the new ReplicaSet's 10 pods", async () => (await pods.list("default", { labelSelector: "app=web" })).items.length === REPLICAS, 90_000);
  const final = (await pods.list("default", { labelSelector: "app=web" })).items;
  expect(final.map((p) => p.status?.phase)).toEqual(Array(REPLICAS).fill("Running"));
  expect(new Set(final.map((p) => p.metadata!.ownerReferences[0]?.name)).size).toBe(1);

  stopWriting.abort();
  await writer;
  const last = written;
  await waitFor(`the watcher to see update ${last}`, async () => seen.length >= last || seen.at(-1) === last, 60_000);
  stop.abort();
  await watcher;
  bounds.stop();
  console.log(
    `etcd leader ${leader.name} and apiserver-${leader.index} killed (new leader ${newLeader.name}); ` +
      `writes resumed after ${((firstWriteAfterKill - killedAt) / 1000).toFixed(2)} s; ${writesBefore} writes before, ${last} in all; ` +
      `watch resumes ${resumes}; largest live pods ${bounds.maxTotal()}`,
  );
  expect(firstWriteAfterKill, "a write succeeded after the kill").toBeGreaterThan(0);
  expect(last, "writes after the kill").toBeGreaterThan(writesBefore);
  expect(seen).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  for (const [rs, n] of bounds.maxPerRs) expect(n, `live pods of ReplicaSet ${rs}`).toBeLessThanOrEqual(REPLICAS);
  // An apiserver that dies under a pod create loses its answer: the ReplicaSet controller makes
  // the pod again and removes the extra (see the chaos test); at most one batch in flight.
  for (const [phase, n] of bounds.maxTotalByPhase) expect(n, `${phase}: ${bounds.worst()}`).toBeLessThanOrEqual(REPLICAS + 2 * MAX_SURGE);
}, 900_000);
