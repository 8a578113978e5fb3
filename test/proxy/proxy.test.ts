// The service proxy on one real node: etcd + apiserver, the Endpoints controller, containerd +
// runc pods on the CNI bridge, and the agent's nftables table (named after the run, removed by
// the harness, swept when a crashed run left it). Traffic goes only to this run's pods, to
// Service addresses in a run-unique /24 and to this host's own address.
import { create } from "@bufbuild/protobuf";
import { spawn, spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { createControllerManager, type ControllerManager } from "../../internal/controller/manager.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { applyRuleset, deleteTable, listTable, listTables } from "../../internal/network/proxy/kernel.ts";
import { condition, startCluster, waitFor, type Cluster } from "../agent/cluster.ts";
import { sweepCrashedRuns } from "../network/leftovers.ts";

const UDP_PEER = join(import.meta.dirname, "udp-peer.ts");
/** Service addresses of this run: a random /24 of 10.233.0.0/16 (no route on the host touches it). */
const third = randomInt(256);
const vip = (n: number) => `10.233.${third}.${n}`;
const nodePort = 30000 + randomInt(2700);

let c: Cluster;
let cm: ControllerManager;
let nodeIP: string;
const services = () => c.cp.client<Service>("Service");
const endpoints = () => c.cp.client<Endpoints>("Endpoints");
const table = () => c.networkName;
const proxyOptions = (cleanup = false) => ({ proxy: { table: table(), minSyncIntervalMs: 100, resyncMs: 2000, cleanup } });

/** httpd on 8080 answering its own name at /, ready while /w/ready.html exists. */
async function backend(name: string, opts: { ready?: boolean; labels?: Record<string, string> } = {}): Promise<Pod> {
  const ready = opts.ready ?? true;
  const pod = c.pod(name, {
      containers: [
        {
          name: "app",
          command: ["sh", "-c", `mkdir -p /w && echo ${name} > /w/index.html && ${ready ? "touch /w/ready.html && " : ""}exec httpd -f -p 8080 -h /w`],
          readinessProbe: { httpGet: { path: "/ready.html", port: "8080" }, periodSeconds: 1, failureThreshold: 1 } as any,
        },
      ],
  });
  pod.metadata!.labels = { ...(opts.labels ?? { app: "web" }), pod: name };
  await c.pods.create(pod);
  return c.waitForPod(name, ready ? "ready" : "running", (p) => p.status?.phase === "Running" && (!ready || condition(p, "Ready") === "True"));
}

async function containerOf(pod: Pod): Promise<string> {
  const list = await c.containersOf(pod.metadata!.uid, "app");
  if (list.length === 0) throw new Error(`no container for pod ${pod.metadata!.name}`);
  return list.at(-1)!.id;
}

async function podExec(pod: Pod, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await c.runtime.exec(await containerOf(pod), ["sh", "-c", script], timeoutMs);
  return r.stdout;
}

/**
 * `n` HTTP GETs from inside a pod; one line per request: the answer or FAIL(<wget's words>).
 * (busybox 1.35's `wget -T` crashes: `timeout` bounds each request instead.)
 */
async function getFrom(pod: Pod, url: string, n: number): Promise<string[]> {
  const out = await podExec(pod, `for i in $(seq ${n}); do busybox timeout 3 wget -q -O- ${url} 2>/tmp/err || echo "FAIL($(cat /tmp/err))"; done`);
  return out.trim().split("\n");
}

/** The same from this host. */
async function getFromHost(url: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await run("busybox", ["timeout", "3", "busybox", "wget", "-q", "-O-", url]);
    out.push(r.code === 0 ? r.stdout.trim() : `FAIL(${r.stderr.trim()})`);
  }
  return out;
}

const tally = (lines: string[]) => lines.reduce<Record<string, number>>((m, l) => ((m[l] = (m[l] ?? 0) + 1), m), {});

function service(name: string, spec: Record<string, unknown>): Service {
  return create(ServiceSchema, { metadata: { name, namespace: "default" }, spec: spec as any });
}

async function readyAddresses(name: string): Promise<string[]> {
  const ep = await endpoints()
    .get("default", name)
    .catch(() => undefined);
  return (ep?.subsets ?? []).flatMap((s) => s.addresses.map((a) => a.ip)).sort();
}

/** Waits until the proxy's table sends `ip:port` to exactly these backends. */
async function waitForRules(what: string, pred: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return waitFor(`rules: ${what}`, async () => {
    const text = (await listTable(table())) ?? "";
    return pred(text) ? text : undefined;
  }, timeoutMs);
}

/** Runs udp-peer.ts in a pod's network namespace. */
function udpPeer(pod: Pod, args: string[]) {
  const netns = `${c.networkName}-${pod.metadata!.uid}`;
  return spawn("ip", ["netns", "exec", netns, process.execPath, UDP_PEER, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

async function udpServe(pod: Pod, port: number, name: string): Promise<() => void> {
  const child = udpPeer(pod, ["serve", String(port), name]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (b: Buffer) => b.toString().includes("ready") && resolve());
    child.on("exit", (code) => reject(new Error(`udp server exited ${code}`)));
  });
  return () => child.kill();
}

/** Lines the UDP client prints, one per datagram sent. */
async function udpAsk(pod: Pod, ip: string, port: number, count: number, intervalMs: number, sourcePort = 0): Promise<string[]> {
  const child = udpPeer(pod, ["ask", ip, String(port), String(count), String(intervalMs), String(sourcePort)]);
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  await new Promise((r) => child.on("exit", r));
  return out.trim().split("\n");
}

let webA: Pod;
let webB: Pod;
let client: Pod;

beforeAll(async () => {
  // The apiserver allocates from this run's /24 only, so the addresses the tests ask for are its own.
  c = await startCluster({ startAgent: false, controlPlane: { serviceCidr: `10.233.${third}.0/24` } });
  await c.restartAgent(proxyOptions());
  cm = createControllerManager({
    transport: c.cp.transport,
    log: pino({ level: process.env.SKIFF_TEST_LOG ?? "silent" }),
    options: { controllers: ["endpoints"], leaderElect: false },
  });
  await cm.start();
  await waitFor("endpoints controller running", () => cm.isRunning(), 30_000);
  // The address this host uses for the outside world: NodePorts answer on it.
  const route = JSON.parse((await runChecked("ip", ["-j", "route", "get", "192.0.2.200"])).stdout) as { prefsrc: string }[];
  nodeIP = route[0].prefsrc;
  [webA, webB, client] = await Promise.all([
    backend("web-a"),
    backend("web-b"),
    c.createPod("client", { containers: [{ name: "app", command: ["sleep", "3600"] }] }).then(() => c.waitForPod("client", "running", (p) => p.status?.phase === "Running")),
  ]);
  await services().create(service("web", { clusterIp: vip(10), selector: { app: "web" }, ports: [{ name: "http", port: 80, targetPort: "8080" }] }));
  await waitFor("2 ready endpoints", async () => (await readyAddresses("web")).length === 2 || undefined, 30_000);
}, 180_000);

afterAll(async () => {
  await cm?.stop();
  await c?.stop();
  expect(await listTables()).not.toContain(c.networkName);
});

describe("service proxy (nftables) on a real node", () => {
  it("spreads 300 requests from a pod to the ClusterIP over every ready backend", async () => {
    const ipA = webA.status!.podIp;
    const ipB = webB.status!.podIp;
    await waitForRules("web → both pods", (t) => t.includes(`dnat to ${ipA}:8080`) && t.includes(`dnat to ${ipB}:8080`));
    const counts = tally(await getFrom(client, `http://${vip(10)}/`, 300));
    expect(Object.keys(counts).sort()).toEqual(["web-a", "web-b"]);
    // Random spread: each gets about 150; fewer than 75 would be ~1e-18 likely.
    expect(counts["web-a"]).toBeGreaterThan(75);
    expect(counts["web-b"]).toBeGreaterThan(75);
    // The node itself reaches the ClusterIP too (output hook).
    expect(Object.keys(tally(await getFromHost(`http://${vip(10)}/`, 40))).sort()).toEqual(["web-a", "web-b"]);
  });

  it("stops sending to a backend within 2 s of it turning unready, and takes it back when ready", async () => {
    await podExec(webB, "rm /w/ready.html");
    const t0 = Date.now();
    const late: string[] = [];
    while (Date.now() - t0 < 4000) {
      const started = Date.now();
      const batch = await getFrom(client, `http://${vip(10)}/`, 10);
      if (started - t0 >= 2000) late.push(...batch);
    }
    expect(late.length).toBeGreaterThan(0);
    expect(tally(late)).toEqual({ "web-a": late.length });
    expect(await readyAddresses("web")).toEqual([webA.status!.podIp]);

    await podExec(webB, "touch /w/ready.html");
    await waitFor("web-b ready again", async () => (await readyAddresses("web")).length === 2 || undefined, 10_000);
    await waitForRules("web-b back", (t) => t.includes(`dnat to ${webB.status!.podIp}:8080`));
    expect(Object.keys(tally(await getFrom(client, `http://${vip(10)}/`, 40))).sort()).toEqual(["web-a", "web-b"]);
  });

  it("lets a pod reach itself through its own Service (hairpin)", async () => {
    await services().create(service("only-a", { clusterIp: vip(11), selector: { pod: "web-a" }, ports: [{ port: 80, targetPort: "8080" }] }));
    await waitFor("only-a has web-a", async () => (await readyAddresses("only-a")).length === 1 || undefined, 10_000);
    await waitForRules("only-a", (t) => t.includes(`${vip(11)} . tcp . 80 : goto svc-`));
    expect(tally(await getFrom(webA, `http://${vip(11)}/`, 20))).toEqual({ "web-a": 20 });
    // Through a Service with both backends: web-a reaches itself and web-b (the reply from web-b
    // crosses the bridge back to web-a and must still be un-NATed).
    expect(Object.keys(tally(await getFrom(webA, `http://${vip(10)}/`, 40))).sort()).toEqual(["web-a", "web-b"]);
  });

  it("answers a NodePort on the node's address, from the host and from a pod", async () => {
    await services().create(
      service("web-np", { type: "NodePort", clusterIp: vip(12), selector: { app: "web" }, ports: [{ port: 80, targetPort: "8080", nodePort }] }),
    );
    await waitForRules("nodePort", (t) => t.includes(`tcp . ${nodePort} : goto ext-default/web-np/`));
    expect(Object.keys(tally(await getFromHost(`http://${nodeIP}:${nodePort}/`, 40))).sort()).toEqual(["web-a", "web-b"]);
    expect(Object.keys(tally(await getFrom(client, `http://${nodeIP}:${nodePort}/`, 40))).sort()).toEqual(["web-a", "web-b"]);
  });

  it("rejects at once, instead of hanging, when a Service has no ready backend", async () => {
    await services().create(service("nobody", { clusterIp: vip(13), selector: { app: "nobody" }, ports: [{ name: "http", port: 80 }, { name: "dns", port: 53, protocol: "UDP" }] }));
    await waitForRules("nobody rejects", (t) => t.includes(`${vip(13)} . tcp . 80 : goto reject-no-endpoints`));
    const [line] = await getFrom(client, `http://${vip(13)}/`, 1);
    expect(line).toMatch(/FAIL\(.*refused/i);
    expect(await udpAsk(client, vip(13), 53, 1, 0)).toEqual(["error ECONNREFUSED"]);
  });

  it("serves a UDP Service and moves a running UDP flow to the new backend when the old one goes", async () => {
    const [udpA, udpB] = await Promise.all([backend("udp-a", { labels: { app: "udp" } }), backend("udp-b", { labels: { app: "udp" }, ready: false })]);
    const stops = [await udpServe(udpA, 5353, "udp-a"), await udpServe(udpB, 5353, "udp-b")];
    try {
      await services().create(service("dns", { clusterIp: vip(14), selector: { app: "udp" }, ports: [{ port: 53, targetPort: "5353", protocol: "UDP" }] }));
      await waitForRules("udp → udp-a", (t) => t.includes(`udp dnat to ${udpA.status!.podIp}:5353`));
      // One client socket (one conntrack entry) asking every 100 ms while the backends swap.
      const sourcePort = 20000 + randomInt(10000);
      const asking = udpAsk(client, vip(14), 53, 60, 100, sourcePort);
      await new Promise((r) => setTimeout(r, 1000));
      await podExec(udpB, "touch /w/ready.html");
      await podExec(udpA, "rm /w/ready.html");
      const answers = await asking;
      expect(answers[0]).toBe("udp-a");
      // Without the conntrack flush the flow would stick to udp-a (it still answers) for good.
      expect(answers.slice(-10)).toEqual(Array(10).fill("udp-b"));
    } finally {
      for (const s of stops) s();
    }
  });

  it("keeps Service traffic flowing while the agent restarts", async () => {
    let loopDone = 0;
    const loop = getFrom(client, `http://${vip(10)}/`, 300).finally(() => (loopDone = Date.now()));
    await new Promise((r) => setTimeout(r, 300));
    await c.restartAgent(proxyOptions());
    const restarted = Date.now();
    const lines = await loop;
    expect(loopDone).toBeGreaterThan(restarted); // the requests spanned the whole restart
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
    expect(lines).toHaveLength(300);
  });

  it("puts back rules someone removed (periodic resync)", async () => {
    await deleteTable(table());
    await waitForRules("table back", (t) => t.includes(`${vip(10)} . tcp . 80`), 10_000);
    // A foreign rule added to the table is gone after the next full write.
    await applyRuleset(`add rule ip ${table()} services ip daddr ${vip(99)} drop\n`);
    await waitForRules("foreign rule gone", (t) => !t.includes(vip(99)), 10_000);
  });

  it("removes a deleted Service's rules, and its address stops answering", async () => {
    await services().delete("default", "web");
    const text = await waitForRules("web gone", (t) => !t.includes(`${vip(10)} `));
    expect(text).not.toContain("default/web/");
    const [line] = await getFrom(client, `http://${vip(10)}/`, 1);
    expect(line).toMatch(/^FAIL/);
  });

  it("removes its table on stop with cleanup, and leaves it without", async () => {
    await c.restartAgent(proxyOptions(false));
    await waitForRules("written", (t) => t.includes(vip(12)));
    await c.agent.stop();
    expect(await listTable(table())).toContain(vip(12));
    await c.restartAgent(proxyOptions(true));
    await waitForRules("written", (t) => t.includes(vip(12)));
    await c.agent.stop();
    expect(await listTable(table())).toBeUndefined();
    await c.restartAgent(proxyOptions(false));
  });

  it("sweeps the table a crashed run left", async () => {
    const dead = spawnSync("true").pid!;
    const name = `sk-t${dead.toString(36)}zz`;
    await applyRuleset(`table ip ${name} {\n}\n`);
    expect(await listTables()).toContain(name);
    await sweepCrashedRuns();
    expect(await listTables()).not.toContain(name);
  });
});
