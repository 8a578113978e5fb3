// Two apiservers on one etcd (each `skiff apiserver` a child process, --endpoint-reconciler-type
// lease, both able to sign node certificates), one real node whose agent joined with a token
// through the first one's URL (its certificates live 90 s: it renews them every minute or so),
// skiffctl given only the first one, and a watcher of our own. kill -9 of the apiserver they all
// use: the agent learned the other from the `kubernetes` Endpoints and moves there (its pods'
// status keeps being written: a pod made after the kill runs and is reported Running, one deleted
// after it goes; its certificates are renewed through the other), skiffctl learned it too (kept
// in its config file) and answers from it, the watcher sees every update of a counter exactly
// once and in order, the agent started again with its dead --server comes up through the one it
// kept, and the dead apiserver's lease expires out of the Endpoints.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { adminConfig } from "../../internal/cli/testing.ts";
import type { CliConfig } from "../../internal/cli/config.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { startComponent, type Component } from "../chaos/components.ts";
import { agentLogTail, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { apiserverTlsArgs, getTls, nodeSignerArgs, servingTlsFor } from "../harness/pki.ts";
import { freePort } from "../harness/ports.ts";

const SKIFFCTL = fileURLToPath(new URL("../../cmd/skiffctl.ts", import.meta.url));
// Short enough that the agent renews (at 70-90 %) while the test runs, after the kill too.
const CERT_TTL_MS = 90_000;

let c: MultiNodeCluster;
let apiservers: Component[] = [];
let urls: string[] = [];

/** `skiff apiserver` at `host:port` on the cluster's etcd and PKI, publishing itself in the Endpoints. */
function childApiServer(name: string, host: string, port: number, tls: string[]): Component {
  const url = `https://${host}:${port}`;
  return startComponent(
    name,
    ["apiserver", "--etcd-servers", c.cp.etcd.endpoint, "--etcd-prefix", "/skiff-test", "--listen", `${host}:${port}`, "--endpoint-reconciler-type", "lease", "--log-level", "warn", ...tls],
    join(c.dir, "ha", `${name}.log`),
    async () => (await getTls(`${url}/readyz`, { ca: c.cp.pki.ca.cert })).status === 200,
  );
}

beforeAll(async () => {
  c = await startMultiNode({ nodes: 1, nodeCertificateTtlMs: CERT_TTL_MS });
  const dir = join(c.dir, "ha");
  mkdirSync(dir, { recursive: true });
  const serving = await servingTlsFor(c.cp.pki, [c.bridgeIP]);
  writeFileSync(join(dir, "serving.crt"), serving.cert);
  writeFileSync(join(dir, "serving.key"), serving.key, { mode: 0o600 });
  const tls = [...apiserverTlsArgs(c.cp.pki), ...nodeSignerArgs(c.cp.pki, `${CERT_TTL_MS / 1000}s`)];
  tls[tls.indexOf("--tls-cert-file") + 1] = join(dir, "serving.crt");
  tls[tls.indexOf("--tls-private-key-file") + 1] = join(dir, "serving.key");
  // The first apiserver takes over the in-process one's address (the agent knows only that URL).
  const first = new URL(c.cp.server.url);
  await c.cp.server.close();
  const second = await freePort();
  apiservers = [childApiServer("apiserver-a", c.bridgeIP, Number(first.port), tls), childApiServer("apiserver-b", c.bridgeIP, second, tls)];
  urls = [c.cp.server.url, `https://${c.bridgeIP}:${second}`];
  await apiservers[0].start();
  await apiservers[1].start();
}, 180_000);

afterAll(async () => {
  for (const a of apiservers) await a.stop();
  await c?.stop();
});

const isNotFound = (err: unknown) => ConnectError.from(err).code === Code.NotFound;

/** skiffctl as the admin with a config file of its own whose cluster names only the first apiserver. */
function cliConfigFile(): string {
  const file = join(c.dir, "ha", "skiffctl.yaml");
  const cfg = adminConfig();
  cfg.clusters[0].cluster = { ...cfg.clusters[0].cluster, server: urls[0] } as typeof cfg.clusters[0]["cluster"];
  writeFileSync(file, YAML.stringify(cfg), { mode: 0o600 });
  return file;
}
let cliConfig = "";
function skiffctl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_CONFIG: cliConfig, NO_COLOR: "1" };
  delete env.SKIFF_SERVER;
  return new Promise((resolve) => {
    execFile(process.execPath, [SKIFFCTL, ...args], { env, timeout: 120_000 }, (err, out, errOut) => resolve({ code: err ? Number(err.code ?? 1) : 0, out, err: errOut }));
  });
}
const knownServers = () => (YAML.parse(readFileSync(cliConfig, "utf8")) as CliConfig).clusters?.[0].cluster["known-servers"];

it("kill -9 of the apiserver an agent, skiffctl and a watcher use: all move to the other, nothing missed or repeated", async () => {
  const admin = createApiTransport(urls, c.cp.pki.adminCredentials, { discover: true });
  const endpoints = createResourceClient<Endpoints>(admin, "Endpoints");
  // The harness's own clients know only the first apiserver: the test's go through both.
  const pods = createResourceClient<Pod>(admin, "Pod");
  const waitForRunning = (name: string) =>
    waitFor(`pod ${name} Running\n${agentLogTail(c.nodes[0])}`, async () => {
      const p = await pods.get("default", name).catch(() => undefined);
      return p?.status?.phase === "Running" && p.status.podIp ? p : undefined;
    }, 90_000);
  const published = async () => (await endpoints.get("default", "kubernetes")).subsets.flatMap((s) => s.addresses.map((a) => `https://${a.ip}:${s.ports[0].port}`)).sort();
  await waitFor("both apiservers in the kubernetes Endpoints", async () => JSON.stringify(await published()) === JSON.stringify([...urls].sort()), 60_000);
  // The agent learns the servers when it starts: start it again now that both are published.
  const node = c.nodes[0];
  await node.restartAgent();
  // skiffctl learns them on its first command and keeps them in its config file's cluster entry.
  cliConfig = cliConfigFile();
  const first = await skiffctl(["get", "nodes", "-o", "name"]);
  expect(first.code, first.err).toBe(0);
  expect(knownServers()).toBe(urls[1]);

  await pods.create(c.pod(node, "before"));
  await waitForRunning("before");

  // A counter updated 1..N by a writer that retries; a watcher of our own resumes from its last version.
  const N = 60;
  const cms = createResourceClient<ConfigMap>(admin, "ConfigMap");
  await cms.create(create(ConfigMapSchema, { metadata: { name: "counter", namespace: "default" }, data: { seq: "0" } }));
  const seen: number[] = [];
  const stopWatch = new AbortController();
  let resumes = 0;
  const watcher = (async () => {
    const listed = await cms.list("default", { fieldSelector: "metadata.name=counter" });
    let rv = listed.resourceVersion;
    while (!stopWatch.signal.aborted) {
      try {
        for await (const ev of cms.watch("default", { resourceVersion: rv, fieldSelector: "metadata.name=counter", signal: stopWatch.signal })) {
          if (ev.object?.metadata?.resourceVersion) rv = ev.object.metadata.resourceVersion;
          if (ev.type === "MODIFIED") seen.push(Number(ev.object!.data.seq));
        }
      } catch (err) {
        if (stopWatch.signal.aborted) return;
        // A relist would hide missed events: this watcher must never need one.
        if (ConnectError.from(err).code !== Code.Unavailable) throw err;
        resumes++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  async function write(seq: number): Promise<void> {
    for (;;) {
      try {
        const cm = await cms.get("default", "counter");
        if (Number(cm.data.seq) >= seq) return;
        cm.data.seq = String(seq);
        await cms.update(cm);
        return;
      } catch (err) {
        const code = ConnectError.from(err).code;
        if (code !== Code.Unavailable && code !== Code.Aborted) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  for (let i = 1; i <= N / 2; i++) await write(i);

  const killedAt = Date.now();
  await apiservers[0].kill();
  for (let i = N / 2 + 1; i <= N; i++) await write(i);

  // skiffctl, given only the dead server, answers from the one it learned before the kill.
  const after = await skiffctl(["get", "pods", "-o", "name"]);
  expect(after.code, after.err).toBe(0);
  expect(after.out).toContain("before");

  // The agent moved: a pod made now runs and is reported Running; one deleted now goes.
  await pods.create(c.pod(node, "after"));
  await waitForRunning("after");
  expect(node.agent!.logLines().filter((l) => l.msg === "apiserver unavailable: moving to another").map((l) => l.to)).toContain(urls[1]);
  await pods.delete("default", "before");
  await waitFor("pod before gone (the agent confirmed its deletion)", () => pods.get("default", "before").then(() => false, isNotFound), 90_000);

  // Renewal goes through the same transport: a renewal after the kill reached the live apiserver.
  await waitFor(`node certificates renewed after the kill\n${agentLogTail(node)}`, async () =>
    node.agent!.logLines().some((l) => l.msg === "node certificates renewed" && Number(l.time) > killedAt), CERT_TTL_MS * 2);

  // Started again, its --server dead: it comes up through the apiserver it kept in <data-dir>/servers.
  await node.restartAgent();
  await pods.create(c.pod(node, "restarted"));
  await waitForRunning("restarted");

  await waitFor(`the watcher saw all ${N} updates`, async () => seen.length >= N, 60_000);
  stopWatch.abort();
  await watcher;
  expect(seen).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  expect(resumes).toBeGreaterThan(0);

  // The dead apiserver's lease expires and the live one removes it from the Endpoints.
  await waitFor("only the live apiserver in the Endpoints", async () => JSON.stringify(await published()) === JSON.stringify([urls[1]]), 60_000);

  // With every apiserver down, skiffctl says so in one line naming them.
  await apiservers[1].kill();
  const none = await skiffctl(["get", "pods"]);
  expect(none.code).toBe(1);
  expect(none.err.trim().split("\n")).toHaveLength(1);
  expect(none.err).toContain(`Error: cannot reach any apiserver (${urls[0]}, ${urls[1]}): `);
}, 600_000);
