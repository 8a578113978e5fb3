// Two apiservers on one etcd (each `skiff apiserver` a child process, --endpoint-reconciler-type
// lease), one real node whose agent was given only the first one's URL, skiffctl given both, and
// a watcher of our own. kill -9 of the apiserver they all use: the agent learned the other from
// the `kubernetes` Endpoints and moves there (its pods' status keeps being written: a pod made
// after the kill runs and is reported Running, one deleted after it goes), skiffctl answers from
// the other, the watcher sees every update of a counter exactly once and in order, and the dead
// apiserver's lease expires out of the Endpoints.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigMapSchema, type ConfigMap } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { spawnSkiffctl } from "../../internal/cli/testing.ts";
import { createResourceClient } from "../../internal/client/resource-client.ts";
import { createApiTransport } from "../../internal/client/transport.ts";
import { startComponent, type Component } from "../chaos/components.ts";
import { agentLogTail, startMultiNode, waitFor, type MultiNodeCluster } from "../harness/multinode.ts";
import { apiserverTlsArgs, getTls, servingTlsFor } from "../harness/pki.ts";
import { freePort } from "../harness/ports.ts";

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
  c = await startMultiNode({ nodes: 1 });
  const dir = join(c.dir, "ha");
  mkdirSync(dir, { recursive: true });
  const serving = await servingTlsFor(c.cp.pki, [c.bridgeIP]);
  writeFileSync(join(dir, "serving.crt"), serving.cert);
  writeFileSync(join(dir, "serving.key"), serving.key, { mode: 0o600 });
  const tls = apiserverTlsArgs(c.cp.pki);
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

  await apiservers[0].kill();
  for (let i = N / 2 + 1; i <= N; i++) await write(i);

  // skiffctl, given both servers, answers from the live one.
  const cli = await spawnSkiffctl(urls.join(","), ["get", "pods", "-o", "name"]).done;
  expect(cli.code, cli.err).toBe(0);
  expect(cli.out).toContain("before");

  // The agent moved: a pod made now runs and is reported Running; one deleted now goes.
  await pods.create(c.pod(node, "after"));
  await waitForRunning("after");
  expect(node.agent!.logLines().filter((l) => l.msg === "apiserver unavailable: moving to another").map((l) => l.to)).toContain(urls[1]);
  await pods.delete("default", "before");
  await waitFor("pod before gone (the agent confirmed its deletion)", () => pods.get("default", "before").then(() => false, isNotFound), 90_000);

  await waitFor(`the watcher saw all ${N} updates`, async () => seen.length >= N, 60_000);
  stopWatch.abort();
  await watcher;
  expect(seen).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  expect(resumes).toBeGreaterThan(0);

  // The dead apiserver's lease expires and the live one removes it from the Endpoints.
  await waitFor("only the live apiserver in the Endpoints", async () => JSON.stringify(await published()) === JSON.stringify([urls[1]]), 60_000);
}, 600_000);
