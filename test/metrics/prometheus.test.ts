// Every component scraped by a real Prometheus: a one-node cluster (etcd, apiserver, a containerd
// agent) with the scheduler and two controller-managers as `skiff` child processes serving their
// metrics ports. Prometheus (TLS, a client certificate in system:monitoring) reports every target
// up and, once a Deployment of 3 rolled out, non-zero scheduling attempts, controller queue adds,
// pod start latency and a pod's memory working set. Then /readyz: the standby controller-manager
// is ready and says so; the agent turns unready once it has lost the apiserver.
import { create } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { DeploymentSchema, type Deployment } from "../../gen/skiff/v1alpha1/deployment_pb.js";
import { ServiceAccountSchema, type ServiceAccount } from "../../gen/skiff/v1alpha1/service_account_pb.js";
import { ServiceAccountService } from "../../gen/skiff/v1alpha1/service_account_service_pb.js";
import { issueCert } from "../../internal/pki/certs.ts";
import { startComponent, type Component } from "../chaos/components.ts";
import { startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { getTls, pkiFileArgs } from "../harness/pki.ts";
import { freePorts } from "../harness/ports.ts";
import { startPrometheus, writeScrapeConfig, type PrometheusServer } from "../harness/prometheus.ts";

let c: MultiNodeCluster;
let prom: PrometheusServer;
const components: Component[] = [];
let ports: { scheduler: number; cm: number; standby: number };
let scraper: { cert: string; key: string };

const DEPLOY = fileURLToPath(new URL("../../deploy/prometheus/", import.meta.url));

beforeAll(async () => {
  c = await startMultiNode({ nodes: 1 });
  const pki = c.cp.pki;
  const dir = join(c.dir, "metrics");
  mkdirSync(dir, { recursive: true });
  // The metrics ports' serving certificate (loopback) from the cluster CA, as `skiff up` makes them.
  const serving = await issueCert(pki.ca, { commonName: "skiff-metrics", sans: ["127.0.0.1"], usage: "server" });
  writeFileSync(join(dir, "serving.crt"), serving.cert);
  writeFileSync(join(dir, "serving.key"), serving.key, { mode: 0o600 });
  const tls = ["--tls-cert-file", join(dir, "serving.crt"), "--tls-private-key-file", join(dir, "serving.key")];
  const [scheduler, cm, standby] = await freePorts(3);
  ports = { scheduler, cm, standby };
  const server = ["--server", c.cp.server.url];
  const ready = (port: number) => async () => (await getTls(`https://127.0.0.1:${port}/livez`, { ca: pki.ca.cert })).status === 200;
  const start = async (name: string, args: string[], port: number) => {
    const comp = startComponent(name, [...args, ...server, "--metrics-listen", `127.0.0.1:${port}`, ...tls, "--log-level", "warn"], join(dir, `${name}.log`), ready(port));
    components.push(comp);
    await comp.start();
  };
  await start("scheduler", ["scheduler", ...pkiFileArgs(pki, "scheduler"), "--leader-elect", "false", "--backoff-initial", "200"], scheduler);
  await start("controller-manager", ["controller-manager", ...pkiFileArgs(pki, "controller-manager"), "--cluster-cidr", c.clusterCidr, "--identity", "cm-1"], cm);
  // The first one leads (it found no lease); this one stands by.
  await waitFor("cm-1 leading", async () => (await getTls(`https://127.0.0.1:${cm}/readyz?verbose`, { ca: pki.ca.cert })).body.includes("[+]leader-election ok: leading"), 60_000);
  await start("controller-manager-standby", ["controller-manager", ...pkiFileArgs(pki, "controller-manager"), "--cluster-cidr", c.clusterCidr, "--identity", "cm-2"], standby);

  scraper = await issueCert(pki.ca, { commonName: "prometheus", organizations: ["system:monitoring"], usage: "client" });
  prom = await startPrometheus({
    tls: { ca: pki.ca.cert, ...scraper },
    jobs: [
      { name: "skiff-apiserver", targets: [new URL(c.cp.server.url).host] },
      { name: "skiff-scheduler", targets: [`127.0.0.1:${scheduler}`] },
      { name: "skiff-controller-manager", targets: [`127.0.0.1:${cm}`, `127.0.0.1:${standby}`] },
      { name: "skiff-agent", targets: [`${c.nodes[0].ip}:10250`] },
    ],
  });
}, 240_000);

afterAll(async () => {
  await prom?.stop();
  for (const comp of components.reverse()) await comp.stop();
  await c?.stop();
}, 120_000);

/** The first value of an instant query, once it satisfies `ok` (Prometheus is polled, bounded). */
async function valueOf(expr: string, ok: (v: number) => boolean = (v) => v > 0): Promise<number> {
  return waitFor(
    `prometheus: ${expr}`,
    async () => {
      const r = await prom.query(expr);
      return r.length > 0 && ok(r[0].value) ? r[0].value : undefined;
    },
    90_000,
  );
}

it("scrapes every component over TLS, and the deploy/ config and alert rules pass promtool", async () => {
  const targets = await waitFor(
    "every target up",
    async () => {
      const t = await prom.targets();
      return t.length === 5 && t.every((x) => x.health === "up") ? t : undefined;
    },
    90_000,
  ).catch(async (err) => {
    throw new Error(`${err}\ntargets: ${JSON.stringify(await prom.targets())}\n${prom.log()}`);
  });
  expect(targets.map((t) => t.job).sort()).toEqual(["skiff-agent", "skiff-apiserver", "skiff-controller-manager", "skiff-controller-manager", "skiff-scheduler"]);
  // Every component says what it is.
  expect(await valueOf('count(skiff_build_info{component=~"apiserver|scheduler|controller-manager|agent"})', (v) => v === 5)).toBe(5);

  // The shipped config with its TLS files in place, and the alert rules.
  const dir = join(c.dir, "promtool");
  writeScrapeConfig(join(dir, "skiff"), { jobs: [], tls: { ca: c.cp.pki.ca.cert, ...scraper } });
  copyFileSync(join(dir, "skiff", "client.crt"), join(dir, "skiff", "prometheus.crt"));
  copyFileSync(join(dir, "skiff", "client.key"), join(dir, "skiff", "prometheus.key"));
  copyFileSync(join(DEPLOY, "prometheus.yml"), join(dir, "prometheus.yml"));
  copyFileSync(join(DEPLOY, "alerts.yml"), join(dir, "alerts.yml"));
  expect(execFileSync("promtool", ["check", "config", join(dir, "prometheus.yml")], { encoding: "utf8" })).toMatch(/SUCCESS: 7 rules found/);
});

it("shows scheduling attempts, controller queue adds, pod start latency and pod memory after a Deployment of 3 rolls out", async () => {
  const template = c.pod(undefined, "x").spec!;
  template.containers[0].command = ["sleep", "3600"];
  template.terminationGracePeriodSeconds = 1n;
  const deployments = c.cp.client<Deployment>("Deployment");
  await deployments.create(
    create(DeploymentSchema, {
      metadata: { name: "web", namespace: "default" },
      spec: { replicas: 3, selector: { matchLabels: { app: "web" } }, template: { metadata: { labels: { app: "web" } }, spec: template } },
    }),
  );
  await waitFor("3 replicas available", async () => ((await deployments.get("default", "web")).status?.availableReplicas === 3 ? true : undefined), 120_000);

  expect(await valueOf('sum(scheduler_schedule_attempts_total{result="scheduled"})', (v) => v >= 3)).toBeGreaterThanOrEqual(3);
  expect(await valueOf('sum(scheduler_pod_scheduling_sli_duration_seconds_count)', (v) => v >= 3)).toBeGreaterThanOrEqual(3);
  expect(await valueOf('sum(workqueue_adds_total{job="skiff-controller-manager",name="deployment"})')).toBeGreaterThan(0);
  expect(await valueOf('sum(workqueue_adds_total{job="skiff-controller-manager",name="replicaset"})')).toBeGreaterThan(0);
  expect(await valueOf("sum(kubelet_pod_start_duration_seconds_count)", (v) => v >= 3)).toBeGreaterThanOrEqual(3);
  expect(await valueOf("sum(kubelet_pod_start_duration_seconds_sum)")).toBeGreaterThan(0);
  expect(await valueOf('max(container_memory_working_set_bytes{namespace="default",pod=~"web-.*",container="app"})')).toBeGreaterThan(0);
  expect(await valueOf('count(container_memory_working_set_bytes{namespace="default",pod=~"web-.*",container="app"})', (v) => v === 3)).toBe(3);
  expect(await valueOf('sum(kubelet_runtime_operations_total{operation_type="startContainer"})', (v) => v >= 3)).toBeGreaterThanOrEqual(3);
  expect(await valueOf("kubelet_running_pods", (v) => v >= 3)).toBeGreaterThanOrEqual(3);
  // One controller-manager leads, the other stands by.
  expect(await valueOf('sum(leader_election_master_status{name="skiff-controller-manager"})', (v) => v === 1)).toBe(1);
});

it("refuses /metrics to a caller RBAC does not allow, and to none; health stays open", async () => {
  const pki = c.cp.pki;
  const nobody = await pki.issueClient("jane", []);
  const url = `https://127.0.0.1:${ports.scheduler}`;
  const denied = await getTls(`${url}/metrics`, { ca: pki.ca.cert, ...nobody });
  expect(denied.status).toBe(403);
  expect(denied.body).toContain('User "jane" cannot get path "/metrics"');
  expect((await getTls(`${url}/metrics`, { ca: pki.ca.cert })).status).toBe(401);
  expect((await getTls(`${url}/healthz`, { ca: pki.ca.cert })).body).toBe("ok\n");
  expect((await getTls(`${c.cp.server.url}/readyz?verbose`, { ca: pki.ca.cert })).body).toBe("[+]ping ok\n[+]shutdown ok\n[+]storage ok\nreadyz check passed\n");
  // Bearer tokens: the apiserver authenticates them (an unknown one is refused), then RBAC decides.
  const bogus = await getTls(`${url}/metrics`, { ca: pki.ca.cert, headers: { authorization: "Bearer not-a-token" } });
  expect(bogus.status).toBe(401);
  await c.cp.client<ServiceAccount>("ServiceAccount").create(create(ServiceAccountSchema, { metadata: { name: "reader", namespace: "default" } }));
  const { token } = await createClient(ServiceAccountService, c.cp.transport).createToken({ namespace: "default", name: "reader" });
  const tokenDenied = await getTls(`${url}/metrics`, { ca: pki.ca.cert, headers: { authorization: `Bearer ${token}` } });
  expect(tokenDenied.status).toBe(403);
  expect(tokenDenied.body).toContain('cannot get path "/metrics"');
  const allowed = await getTls(`${url}/metrics`, { ca: pki.ca.cert, ...scraper });
  expect(allowed.status).toBe(200);
  expect(allowed.body).toContain("scheduler_pending_pods{queue=");
});

it("a standby controller-manager is ready and says it stands by; an agent that lost the apiserver turns unready", async () => {
  const ca = c.cp.pki.ca.cert;
  const standby = await getTls(`https://127.0.0.1:${ports.standby}/readyz?verbose`, { ca });
  expect(standby.status).toBe(200);
  expect(standby.body).toContain("[+]leader-election ok: standing by: another replica leads");
  expect(standby.body).toContain("readyz check passed");

  const agentReadyz = `https://${c.nodes[0].ip}:10250/readyz?verbose`;
  const asScraper = { ca, ...scraper };
  expect((await getTls(agentReadyz, asScraper)).status).toBe(200);
  await c.cp.server.close();
  const unready = await waitFor(
    "the agent unready",
    async () => {
      const r = await getTls(agentReadyz, asScraper);
      return r.status === 503 ? r : undefined;
    },
    90_000,
  );
  expect(unready.body).toMatch(/\[-\]apiserver failed: the last node lease renewal failed/);
  // Alive all the same: nothing to restart.
  expect((await getTls(`https://${c.nodes[0].ip}:10250/livez`, asScraper)).status).toBe(200);
});
