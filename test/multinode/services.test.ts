// Services across two real nodes (test/harness/multinode.ts): each node's agent runs the service
// proxy (nftables table `ip skiff-proxy` in the node's netns), the Endpoints controller runs in
// the test process, backends sit on both nodes. Traffic goes only to this run's pods, to node
// addresses on the run's bridge, and to Service addresses, which every node refuses (an
// `unreachable` route for the Service range in the node netns) when no rule sends them to a pod.
// Names resolve through the cluster DNS each agent serves on its pod bridge's gateway.
import { create } from "@bufbuild/protobuf";
import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { run, runChecked } from "../../internal/network/exec.ts";
import { DEFAULT_TABLE } from "../../internal/network/proxy/proxy.ts";
import { DEFAULT_SERVICE_CIDR } from "../../internal/apiserver/service-alloc.ts";
import { formatIPv4, parseCidr } from "../../internal/network/conflist.ts";
import { condition } from "../agent/cluster.ts";
import { startMultiNode, waitFor, type ClusterNode, type MultiNodeCluster } from "../harness/multinode.ts";

/** The ClusterIP of Service "web": random inside the apiserver's default range 10.96.0.0/12. */
const webIP = `10.${96 + randomInt(16)}.${randomInt(256)}.${1 + randomInt(254)}`;
/** Service "web-np" gets its ClusterIP and nodePort from the apiserver. */
let npIP = "";
let nodePort = 0;

let c: MultiNodeCluster;
let nodeA: ClusterNode;
let nodeB: ClusterNode;
/** Backends: two on each node. */
const backends: Pod[] = [];
/** The pod requests come from, on node A; another on node B (DNS). */
let client: Pod;
let clientB: Pod;
const names = ["web-a1", "web-a2", "web-b1", "web-b2"];

const services = () => c.cp.client<Service>("Service");
const endpoints = () => c.cp.client<Endpoints>("Endpoints");
const podNode = (name: string) => (name.startsWith("web-a") ? nodeA : nodeB);

function service(name: string, spec: Record<string, unknown>): Service {
  return create(ServiceSchema, { metadata: { name, namespace: "default" }, spec: spec as any });
}

/** httpd on 8080 answering its own name at /, ready while /w/ready.html exists. */
function backendPod(name: string) {
  const pod = c.pod(podNode(name), name, {
    containers: [
      {
        name: "app",
        command: ["sh", "-c", `mkdir -p /w && echo ${name} > /w/index.html && touch /w/ready.html && exec httpd -f -p 8080 -h /w`],
        readinessProbe: { httpGet: { path: "/ready.html", port: "8080" }, periodSeconds: 1, failureThreshold: 1 } as any,
      },
    ],
  });
  pod.metadata!.labels = { app: "web", pod: name };
  return pod;
}

/** Runs a shell command inside the pod's container (its own filesystem and resolv.conf); its stdout. */
async function inContainer(pod: Pod, script: string, timeoutMs = 10_000): Promise<string> {
  const node = c.node(pod.spec!.nodeName);
  const ids = (await node.runtime.listContainers()).filter((x) => x.podUid === pod.metadata!.uid && x.containerName === "app");
  if (ids.length === 0) throw new Error(`no container for pod ${pod.metadata!.name}`);
  const r = await node.runtime.exec(ids.at(-1)!.id, ["sh", "-c", script], timeoutMs);
  if (r.exitCode !== 0) throw new Error(`${script} in ${pod.metadata!.name}: exit ${r.exitCode}: ${r.stderr}`);
  return r.stdout;
}

/** `n` GETs of `url` from inside the container: names resolve through the pod's resolv.conf. */
async function getInContainer(pod: Pod, url: string, n: number): Promise<string[]> {
  const out = await inContainer(pod, `for i in $(seq ${n}); do busybox timeout 3 wget -q -O- ${url} 2>/tmp/err || echo "FAIL($(cat /tmp/err))"; done`, 120_000);
  return out.trim().split("\n");
}

/** A host shell loop of `n` GETs; a failure prints FAIL(<wget's words>) and when it started. */
const getLoop = (url: string, n: number) =>
  `for i in $(seq ${n}); do s=$(date +%T.%N); busybox timeout 3 busybox wget -q -O- ${url} 2>/tmp/err.$$ || echo "FAIL($(cat /tmp/err.$$)) started $s"; done; rm -f /tmp/err.$$`;

/**
 * `n` HTTP GETs sent from the pod's network namespace; one line per request: the answer or
 * FAIL(<wget's words>). (busybox 1.35's `wget -T` crashes: `timeout` bounds each request.)
 */
async function getFrom(pod: Pod, url: string, n: number): Promise<string[]> {
  const r = await c.execInPod(pod, ["sh", "-c", getLoop(url, n)]);
  return r.stdout.trim().split("\n");
}

/** The same from the host (outside every node). */
async function getFromHost(url: string, n: number): Promise<string[]> {
  return (await run("sh", ["-c", getLoop(url, n)])).stdout.trim().split("\n");
}

const tally = (lines: string[]) => lines.reduce<Record<string, number>>((m, l) => ((m[l] = (m[l] ?? 0) + 1), m), {});
const answered = (lines: string[]) => Object.keys(tally(lines)).sort();

/** The node's proxy table, "" when it has none. */
async function table(node: ClusterNode): Promise<string> {
  const r = await node.exec(["nft", "list", "table", "ip", DEFAULT_TABLE]);
  return r.code === 0 ? r.stdout : "";
}

async function waitForRules(node: ClusterNode, what: string, pred: (text: string) => boolean, timeoutMs = 15_000): Promise<string> {
  return waitFor(`${node.name} rules: ${what}`, async () => {
    const text = await table(node);
    return pred(text) ? text : undefined;
  }, timeoutMs);
}

async function endpointIPs(name: string): Promise<{ ready: string[]; notReady: string[] }> {
  const ep = await endpoints()
    .get("default", name)
    .catch(() => undefined);
  const subsets = ep?.subsets ?? [];
  return {
    ready: subsets.flatMap((s) => s.addresses.map((a) => a.ip)).sort(),
    notReady: subsets.flatMap((s) => s.notReadyAddresses.map((a) => a.ip)).sort(),
  };
}

const ipOf = (name: string) => backends.find((p) => p.metadata!.name === name)!.status!.podIp;
const dnatTo = (name: string) => `dnat to ${ipOf(name)}:8080`;

beforeAll(async () => {
  c = await startMultiNode({ nodes: 2, controllers: true });
  [nodeA, nodeB] = c.nodes;
  // A Service address nobody serves stops in the node instead of following its default route
  // out of the host (gone with the node netns).
  for (const n of c.nodes) await runChecked("ip", ["-n", n.netns, "route", "add", "unreachable", DEFAULT_SERVICE_CIDR]);
  for (const name of names) await c.pods.create(backendPod(name));
  await c.createPod(nodeA, "client", { containers: [{ name: "app", command: ["sleep", "3600"] }] });
  await c.createPod(nodeB, "client-b", { containers: [{ name: "app", command: ["sleep", "3600"] }] });
  for (const name of names) backends.push(await c.waitForPod(name, "ready", (p) => p.status?.phase === "Running" && condition(p, "Ready") === "True"));
  client = await c.waitForRunning("client");
  clientB = await c.waitForRunning("client-b");
  await services().create(service("web", { clusterIp: webIP, selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "8080" }] }));
  await waitFor("4 ready endpoints", async () => (await endpointIPs("web")).ready.length === 4 || undefined, 30_000);
}, 180_000);

afterAll(async () => {
  await c?.stop();
});

describe("Services across two nodes", () => {
  it("spreads 300 requests from a pod on node A to the ClusterIP over the ready backends of both nodes", async () => {
    for (const n of c.nodes) await waitForRules(n, "web → 4 pods", (t) => names.every((name) => t.includes(dnatTo(name))));
    const counts = tally(await getFrom(client, `http://${webIP}/`, 300));
    expect(Object.keys(counts).sort()).toEqual(names);
    // Random spread: about 75 each; 30 or fewer is ~1e-11 likely for one backend.
    for (const name of names) expect(counts[name], name).toBeGreaterThan(30);
  });

  it("resolves the Service by full and short name on both nodes and spreads requests by name over both nodes' backends", async () => {
    const webAnswer = new RegExp(`Name:\\s+web\\.default\\.svc\\.cluster\\.local\\nAddress: ${webIP.replaceAll(".", "\\.")}`);
    for (const pod of [client, clientB]) {
      const node = c.node(pod.spec!.nodeName);
      const gateway = formatIPv4(parseCidr(node.podCidr).first);
      const full = await inContainer(pod, "nslookup web.default.svc.cluster.local");
      expect(full, node.name).toContain(`Server:\t\t${gateway}`); // the node's own DNS
      expect(full, node.name).toMatch(webAnswer);
      // busybox nslookup asks every search domain and exits 1 for the ones that do not exist
      // (web.cluster.local): the first, web.default.svc.cluster.local, must answer.
      const short = await inContainer(pod, "nslookup web || true");
      expect(short, node.name).toMatch(webAnswer);
    }
    const lines = [
      ...(await getInContainer(client, "http://web.default.svc.cluster.local/", 150)),
      ...(await getInContainer(client, "http://web/", 150)),
    ];
    const counts = tally(lines);
    expect(Object.keys(counts).sort()).toEqual(names);
    for (const name of names) expect(counts[name], name).toBeGreaterThan(30);
    expect(answered(await getInContainer(clientB, "http://web/", 80))).toEqual(names);
  });

  it("stops sending to a backend on node B within 2 s of its Endpoints entry turning not-ready", async () => {
    const victim = "web-b1";
    const url = `http://${webIP}/`;
    const flip = Date.now();
    await inContainer(backends[2], "rm /w/ready.html");
    // Watch the Endpoints object and both nodes' tables while a pod on node A keeps asking.
    let epMoved = 0;
    const gone: Record<string, number> = {};
    const watching = (async () => {
      while (!epMoved || Object.keys(gone).length < 2) {
        if (Date.now() - flip > 15_000) return;
        const [ep, ...tables] = await Promise.all([endpointIPs("web"), ...c.nodes.map(table)]);
        const now = Date.now();
        if (!epMoved && ep.notReady.includes(ipOf(victim))) epMoved = now;
        for (const [i, n] of c.nodes.entries()) if (!gone[n.name] && !tables[i].includes(dnatTo(victim))) gone[n.name] = now;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const batches: { started: number; lines: string[] }[] = [];
    while (!epMoved || Date.now() - epMoved < 4000) {
      if (Date.now() - flip > 20_000) break;
      const started = Date.now();
      batches.push({ started, lines: await getFrom(client, url, 10) });
    }
    await watching;
    expect(epMoved, "web-b1 in notReadyAddresses").toBeGreaterThan(0);
    expect(Object.keys(gone).sort()).toEqual([nodeA.name, nodeB.name]);
    const answeredBy = batches.filter((b) => b.lines.includes(victim)).map((b) => b.started - epMoved);
    const lastAnswer = answeredBy.length ? `${Math.max(...answeredBy)} ms` : "(none after the flip)";
    // Polled every ~20 ms plus the time of a round: a rule seen gone before the Endpoints change
    // (a negative figure) means both happened within one round.
    console.log(
      `web-b1 unready: Endpoints moved ${epMoved - flip} ms after the probe file went; rules gone on ` +
        c.nodes.map((n) => `${n.name} ${gone[n.name] - epMoved} ms`).join(", ") +
        ` after the Endpoints change; its last answer came to a batch of requests started ${lastAnswer} after it`,
    );
    const late = batches.filter((b) => b.started >= epMoved + 2000).flatMap((b) => b.lines);
    expect(late.length).toBeGreaterThan(0);
    expect(answered(late)).toEqual(["web-a1", "web-a2", "web-b2"]);
    expect(await endpointIPs("web")).toEqual({ ready: [ipOf("web-a1"), ipOf("web-a2"), ipOf("web-b2")].sort(), notReady: [ipOf(victim)] });

    // Ready again: back in the rules of both nodes and answering.
    await inContainer(backends[2], "touch /w/ready.html");
    await waitFor("web-b1 ready again", async () => (await endpointIPs("web")).ready.length === 4 || undefined, 10_000);
    for (const n of c.nodes) await waitForRules(n, "web-b1 back", (t) => t.includes(dnatTo(victim)));
    expect(answered(await getFrom(client, url, 80))).toEqual(names);
  });

  it("answers a NodePort on each node's address, from the host and from a pod, with backends of both nodes", async () => {
    const np = await services().create(service("web-np", { type: "NodePort", selector: { app: "web" }, ports: [{ port: 80, targetPort: "8080" }] }));
    npIP = np.spec!.clusterIp;
    nodePort = np.spec!.ports[0].nodePort;
    expect(nodePort).toBeGreaterThanOrEqual(30000);
    expect(nodePort).toBeLessThanOrEqual(32767);
    for (const n of c.nodes) await waitForRules(n, "nodePort", (t) => t.includes(`tcp . ${nodePort} : goto ext-default/web-np/`) && names.every((name) => t.includes(dnatTo(name))));
    for (const n of c.nodes) {
      // 80 requests over 4 backends: one missing by chance is ~4e-10 likely.
      expect(answered(await getFromHost(`http://${n.ip}:${nodePort}/`, 80)), `host → ${n.name}`).toEqual(names);
      expect(answered(await getFrom(client, `http://${n.ip}:${nodePort}/`, 80)), `pod on ${nodeA.name} → ${n.name}`).toEqual(names);
    }
  });

  it("keeps a client on one backend with sessionAffinity ClientIP", async () => {
    const sticky = await services().create(service("sticky", { selector: { app: "web" }, sessionAffinity: "ClientIP", ports: [{ port: 80, targetPort: "8080" }] }));
    const ip = sticky.spec!.clusterIp;
    for (const n of c.nodes) await waitForRules(n, "affinity", (t) => t.includes(`${ip} . tcp . 80`) && t.includes("update @aff-default/sticky/"));
    // 100 requests from one pod over 4 backends; without affinity all four answer (see above).
    const lines = await getFrom(client, `http://${ip}/`, 100);
    expect(lines).toHaveLength(100);
    expect(answered(lines)).toHaveLength(1);
    expect(names).toContain(lines[0]);
    await services().delete("default", "sticky");
  });

  it("externalTrafficPolicy Local: only a node with a backend forwards its NodePort, and the backend sees the client's address", async () => {
    const np = await services().create(
      service("np-local", { type: "NodePort", externalTrafficPolicy: "Local", selector: { pod: "web-a1" }, ports: [{ port: 80, targetPort: "8080" }] }),
    );
    const port = np.spec!.ports[0].nodePort;
    await waitForRules(nodeA, "local NodePort", (t) => /chain ext-default\/np-local\/tcp-80 \{[^}]*goto lcl-default\/np-local\//.test(t));
    await waitForRules(nodeB, "NodePort dropped", (t) => /chain ext-default\/np-local\/tcp-80 \{[^}]*\bdrop\b/.test(t));
    expect(answered(await getFromHost(`http://${nodeA.ip}:${port}/`, 20))).toEqual(["web-a1"]);
    const [fromB] = await getFromHost(`http://${nodeB.ip}:${port}/`, 1);
    expect(fromB).toMatch(/^FAIL/);
    // Node B's own pods are not outside clients: they reach the backend on node A (as kube-proxy).
    expect(answered(await getFrom(clientB, `http://${nodeB.ip}:${port}/`, 5))).toEqual(["web-a1"]);

    // The backend answered the host's own address (conntrack's reply direction on node A): not
    // masqueraded, unlike the Cluster policy NodePort of "web-np".
    const replies = async (p: number) => {
      const r = await nodeA.exec(["conntrack", "-L", "-p", "tcp", "--orig-src", c.bridgeIP, "--orig-port-dst", String(p)]);
      return r.stdout.trim().split("\n").filter((l) => l.includes(`dport=${p}`));
    };
    const local = await replies(port);
    expect(local.length).toBeGreaterThanOrEqual(20);
    for (const l of local) expect(l).toContain(`src=${ipOf("web-a1")} dst=${c.bridgeIP} sport=8080`);
    await getFromHost(`http://${nodeA.ip}:${nodePort}/`, 4);
    const cluster = await replies(nodePort);
    expect(cluster.length).toBeGreaterThanOrEqual(1);
    for (const l of cluster) expect(l).not.toContain(`dst=${c.bridgeIP} sport=8080`);
    await services().delete("default", "np-local");
  });

  it("keeps Service traffic from pods on both nodes flowing while node B's agent restarts", async () => {
    // Batches of requests from a pod on each node, and a watch on the Endpoints, from before the
    // restart begins until a second after the new agent is ready.
    let restarted = 0;
    const going = () => !restarted || Date.now() - restarted < 1000;
    const lines = new Map<Pod, string[]>([[client, []], [clientB, []]]);
    const first = Date.now();
    const asking = [...lines].map(async ([pod, out]) => {
      while (going()) out.push(...(await getFrom(pod, `http://${webIP}/`, 20)));
    });
    const readyCounts = new Set<number>();
    const watching = (async () => {
      while (going()) {
        readyCounts.add((await endpointIPs("web")).ready.length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const restarting = Date.now();
    await nodeB.restartAgent();
    restarted = Date.now();
    await Promise.all([...asking, watching]);
    expect(first).toBeLessThan(restarting); // the requests spanned the whole restart
    for (const [pod, out] of lines) {
      expect(out.length, pod.metadata!.name).toBeGreaterThan(20);
      expect(out.filter((l) => l.startsWith("FAIL")), pod.metadata!.name).toEqual([]);
    }
    // The new agent adopts node B's pods without flapping their readiness or re-attaching their
    // network (which would give them new addresses and hang requests to the old ones).
    expect([...readyCounts]).toEqual([4]);
    expect((await endpointIPs("web")).ready).toEqual(names.map(ipOf).sort());
    for (const pod of [client, clientB]) expect(answered(await getFrom(pod, `http://${webIP}/`, 80)), pod.metadata!.name).toEqual(names);
  });

  it("a deleted Service stops answering and leaves no rule behind on any node", async () => {
    for (const n of c.nodes) await waitForRules(n, "both services", (t) => t.includes(`${webIP} . tcp . 80`) && t.includes(`tcp . ${nodePort} :`));
    await services().delete("default", "web");
    await services().delete("default", "web-np");
    for (const n of c.nodes) {
      const text = await waitForRules(n, "services gone", (t) => t !== "" && !t.includes("default/web"));
      expect(text).not.toContain(webIP);
      expect(text).not.toContain(npIP);
      expect(text).not.toContain(String(nodePort));
    }
    const [line] = await getFrom(client, `http://${webIP}/`, 1);
    expect(line).toMatch(/^FAIL/);
    for (const n of c.nodes) {
      const [fromHost] = await getFromHost(`http://${n.ip}:${nodePort}/`, 1);
      expect(fromHost).toMatch(/^FAIL\(.*refused/i);
    }
  });
});
