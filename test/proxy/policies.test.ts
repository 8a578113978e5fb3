// sessionAffinity ClientIP and externalTrafficPolicy / internalTrafficPolicy Local, for real:
// the product's proxy (informers on a real apiserver + etcd, the product's ruleset) writes its
// table into a "node" network namespace this test makes, between a "client" namespace and a
// "backends" namespace with two backend addresses. Packets go only between these namespaces
// (none has a default route), never to the host's network.
//
//   client 10.201.1.2 ── 10.201.1.1  node (the proxy's rules, forwards)  10.201.2.1 ── backends 10.201.2.2, .3
import { create } from "@bufbuild/protobuf";
import { spawn, type ChildProcess } from "node:child_process";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { createNetns } from "../../internal/network/netns.ts";
import { parseAffinityElements } from "../../internal/network/proxy/kernel.ts";
import { buildModel, buildRuleset, createServiceProxy, type ServiceProxy } from "../../internal/network/proxy/index.ts";
import { renderChanges } from "../../internal/network/proxy/ruleset.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { removeRun, runName, sweepCrashedRuns } from "../network/leftovers.ts";

const SERVICE_CIDR = "10.100.0.0/24";
const NODE_IP = "10.201.1.1";
const CLIENT_IP = "10.201.1.2";
const NODE_BACKEND_SIDE = "10.201.2.1";
const BACKENDS = ["10.201.2.2", "10.201.2.3"];
const THIS_NODE = "node-a";

let cp: ControlPlane;
let run_: string;
let client: string;
let node: string;
let backends: string;
let server: ChildProcess | undefined;
let proxy: ServiceProxy | undefined;
/** Connections the backends accepted, by backend address. */
const accepted = new Map<string, number>();

const inNs = (ns: string, cmd: string[]) => runChecked("ip", ["netns", "exec", ns, ...cmd]);

/**
 * `count` TCP connections one after another from the client namespace; for each, what the
 * backend said ("<backend address> <peer address it saw>"), "timeout" or "error:<code>".
 */
async function connect(ip: string, port: number, count = 1): Promise<string[]> {
  const script = `const net=require("net");const out=[];(async()=>{for(let i=0;i<${count};i++)out.push(await new Promise(r=>{` +
    `const s=net.connect(${port},"${ip}");s.setTimeout(3000,()=>{s.destroy();r("timeout")});` +
    `s.on("data",d=>{s.destroy();r(String(d).trim())});s.on("error",e=>r("error:"+e.code))}));console.log(JSON.stringify(out))})()`;
  return JSON.parse((await inNs(client, [process.execPath, "-e", script])).stdout) as string[];
}

const link = async (a: string, aIf: string, aIP: string, b: string, bIf: string, bIP: string) => {
  await runChecked("ip", ["-n", a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b]);
  for (const [ns, dev, ip] of [[a, aIf, aIP], [b, bIf, bIP]]) {
    await runChecked("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
    await runChecked("ip", ["-n", ns, "link", "set", dev, "up"]);
  }
};

beforeAll(async () => {
  await sweepCrashedRuns();
  run_ = runName();
  [client, node, backends] = [`${run_}-c`, `${run_}-n`, `${run_}-b`];
  for (const ns of [client, node, backends]) {
    await createNetns(ns);
    await runChecked("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  await link(client, "eth0", CLIENT_IP, node, "eth-c", NODE_IP);
  await link(backends, "eth0", BACKENDS[0], node, "eth-b", NODE_BACKEND_SIDE);
  await runChecked("ip", ["-n", backends, "addr", "add", `${BACKENDS[1]}/24`, "dev", "eth0"]);
  await inNs(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  // The client reaches the Service range and the backends through the node, the backends answer through it.
  await runChecked("ip", ["-n", client, "route", "add", SERVICE_CIDR, "via", NODE_IP]);
  await runChecked("ip", ["-n", client, "route", "add", "10.201.2.0/24", "via", NODE_IP]);
  await runChecked("ip", ["-n", backends, "route", "add", "10.201.1.0/24", "via", NODE_BACKEND_SIDE]);
  const serve = `const net=require("net");for(const ip of ${JSON.stringify(BACKENDS)})net.createServer(s=>{console.log("conn "+ip);s.end(ip+" "+s.remoteAddress+"\\n")}).listen(8080,ip,()=>console.log("listening "+ip))`;
  server = spawn("ip", ["netns", "exec", backends, process.execPath, "-e", serve], { stdio: ["ignore", "pipe", "inherit"] });
  let listening = 0;
  await new Promise<void>((resolve, reject) => {
    server!.once("exit", (code) => reject(new Error(`backend server exited ${code}`)));
    let buf = "";
    server!.stdout!.on("data", (d: Buffer) => {
      buf += String(d);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const [what, ip] = buf.slice(0, i).split(" ");
        buf = buf.slice(i + 1);
        if (what === "conn") accepted.set(ip, (accepted.get(ip) ?? 0) + 1);
        if (what === "listening" && ++listening === BACKENDS.length) resolve();
      }
    });
  });
  cp = await startControlPlane({ serviceCidr: SERVICE_CIDR });
  proxy = createServiceProxy({
    transport: cp.transport,
    log: pino({ level: "silent" }),
    table: run_,
    nodeName: THIS_NODE,
    nodeAddresses: () => [NODE_IP, NODE_BACKEND_SIDE],
    serviceCidr: SERVICE_CIDR,
    minSyncIntervalMs: 50,
    // Whole-table writes all the time: clients must keep their backend across them.
    resyncMs: 300,
    kernel: {
      apply: async (text) => void (await runChecked("ip", ["netns", "exec", node, "nft", "-f", "-"], { stdin: text })),
      deleteTable: async (name) => void (await run("ip", ["netns", "exec", node, "nft", "delete", "table", "ip", name])),
      flushConntrack: async () => "done",
      bridgeNetfilterOn: () => false,
      readAffinity: async (name) => parseAffinityElements((await inNs(node, ["nft", "-j", "list", "table", "ip", name])).stdout),
    },
  });
  proxy.start();
  await proxy.waitForFirstSync();
}, 90_000);

afterAll(async () => {
  await proxy?.stop();
  server?.kill();
  await cp?.stop();
  if (run_) await removeRun(run_);
});

async function service(name: string, spec: Record<string, unknown>, backendNodes: string[]): Promise<Service> {
  const svc = await cp.client<Service>("Service").create(create(ServiceSchema, { metadata: { name, namespace: "default" }, spec: spec as any }));
  await setEndpoints(name, backendNodes);
  return svc;
}

/** The Service's Endpoints: BACKENDS[i] on node backendNodes[i]. */
async function setEndpoints(name: string, backendNodes: string[]): Promise<void> {
  const endpoints = cp.client<Endpoints>("Endpoints");
  const subsets = [{ addresses: backendNodes.map((nodeName, i) => ({ ip: BACKENDS[i], nodeName })), ports: [{ port: 8080, protocol: "TCP" }] }];
  const cur = await endpoints.get("default", name).catch(() => undefined);
  if (cur) await endpoints.update(create(EndpointsSchema, { metadata: cur.metadata, subsets } as any));
  else await endpoints.create(create(EndpointsSchema, { metadata: { name, namespace: "default" }, subsets } as any));
}

const backendOf = (answer: string) => answer.split(" ")[0];
const peerOf = (answer: string) => answer.split(" ")[1];

describe("session affinity and traffic policies in the service proxy", () => {
  it("sessionAffinity ClientIP: 100 requests from one client reach one backend, across whole-table rewrites", async () => {
    const spread = await service("spread", { ports: [{ port: 80, targetPort: "8080" }] }, [THIS_NODE, THIS_NODE]);
    const sticky = await service("sticky", { sessionAffinity: "ClientIP", ports: [{ port: 80, targetPort: "8080" }] }, [THIS_NODE, THIS_NODE]);
    await waitFor("both Services answer", async () => !(await connect(spread.spec!.clusterIp, 80))[0].includes(":") && !(await connect(sticky.spec!.clusterIp, 80))[0].includes(":"), 30_000);

    // Without affinity the same client is spread over both backends (what affinity must prevent).
    const spreadAnswers = await connect(spread.spec!.clusterIp, 80, 100);
    expect(new Set(spreadAnswers.map(backendOf))).toEqual(new Set(BACKENDS));

    // Four rounds of 25, the whole table rewritten between rounds: a rewrite that forgot the
    // clients would move this one to the other backend with even odds each time.
    const answers: string[] = [];
    for (let round = 0; round < 4; round++) {
      const applied = proxy!.stats().applied;
      await waitFor("the proxy rewrote its whole table", async () => proxy!.stats().applied >= applied + 2, 30_000);
      answers.push(...(await connect(sticky.spec!.clusterIp, 80, 25)));
    }
    expect(answers).toHaveLength(100);
    expect(new Set(answers.map(backendOf)).size).toBe(1);
    expect(BACKENDS).toContain(backendOf(answers[0]));

    // A shorter timeout replaces the sets; the client keeps its backend (its time left cut to the timeout).
    const cur = await cp.client<Service>("Service").get("default", "sticky");
    cur.spec!.sessionAffinityConfig!.clientIp!.timeoutSeconds = 60;
    await cp.client<Service>("Service").update(cur);
    await waitFor("the sets have the new timeout", async () => (await inNs(node, ["nft", "list", "table", "ip", run_])).stdout.includes("timeout 1m"), 30_000);
    expect(new Set((await connect(sticky.spec!.clusterIp, 80, 25)).map(backendOf))).toEqual(new Set([backendOf(answers[0])]));
    expect(proxy!.stats().lastError).toBeUndefined();
  }, 120_000);

  it("externalTrafficPolicy Local: the backend on this node sees the client's address; without one here the NodePort does not forward", async () => {
    const cluster = await service("np-cluster", { type: "NodePort", ports: [{ port: 80, targetPort: "8080", nodePort: 30081 }] }, [THIS_NODE]);
    await service("np-local", { type: "NodePort", externalTrafficPolicy: "Local", ports: [{ port: 80, targetPort: "8080", nodePort: 30082 }] }, [THIS_NODE]);
    expect(cluster.spec!.ports[0].nodePort).toBe(30081);
    await waitFor("both NodePorts answer", async () => !(await connect(NODE_IP, 30081))[0].includes(":") && !(await connect(NODE_IP, 30082))[0].includes(":"), 30_000);

    // Cluster masquerades: the backend sees the node. Local keeps the client's address.
    expect(await connect(NODE_IP, 30081)).toEqual([`${BACKENDS[0]} ${NODE_BACKEND_SIDE}`]);
    expect(await connect(NODE_IP, 30082)).toEqual([`${BACKENDS[0]} ${CLIENT_IP}`]);

    // The only backend now runs on another node: this node must not forward its NodePort traffic.
    await setEndpoints("np-local", ["node-b"]);
    await waitFor("the NodePort stops forwarding", async () => (await connect(NODE_IP, 30082))[0] === "timeout", 30_000);
    const before = accepted.get(BACKENDS[0]) ?? 0;
    expect(await connect(NODE_IP, 30082, 3)).toEqual(["timeout", "timeout", "timeout"]);
    expect(accepted.get(BACKENDS[0]) ?? 0).toBe(before);
    // The Cluster policy Service on the same backend still forwards.
    expect(peerOf((await connect(NODE_IP, 30081))[0])).toBe(NODE_BACKEND_SIDE);
  }, 120_000);

  it("internalTrafficPolicy Local: ClusterIP traffic goes only to this node's backends, and is refused without one", async () => {
    const svc = await service("itp", { internalTrafficPolicy: "Local", ports: [{ port: 80, targetPort: "8080" }] }, [THIS_NODE, "node-b"]);
    const ip = svc.spec!.clusterIp;
    await waitFor("the Service answers", async () => !(await connect(ip, 80))[0].includes(":"), 30_000);
    expect(new Set((await connect(ip, 80, 40)).map(backendOf))).toEqual(new Set([BACKENDS[0]]));

    await setEndpoints("itp", ["node-b", "node-c"]);
    await waitFor("the Service is refused on this node", async () => (await connect(ip, 80))[0] === "error:ECONNREFUSED", 30_000);
  }, 120_000);

  it("changes between the policies sent as differences leave the kernel the same table as a whole write", async () => {
    const table = `${run_}x`;
    const eps = create(EndpointsSchema, {
      metadata: { name: "web", namespace: "default" },
      subsets: [{ addresses: [{ ip: BACKENDS[0], nodeName: THIS_NODE }, { ip: BACKENDS[1], nodeName: "node-b" }], ports: [{ port: 8080 }] }],
    } as any);
    const ports = [{ port: 80, nodePort: 30080 }];
    const affinity = { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIp: { timeoutSeconds: 60 } } };
    const specs = [{}, affinity, { ...affinity, externalTrafficPolicy: "Local", internalTrafficPolicy: "Local" }, { externalTrafficPolicy: "Local" }, {}];
    const ruleset = (spec: object) => {
      const svc = create(ServiceSchema, { metadata: { name: "web", namespace: "default" }, spec: { clusterIp: "10.100.0.10", type: "NodePort", ports, ...spec } } as any);
      return buildRuleset(buildModel([svc], [eps], THIS_NODE), { table, nodeAddresses: [NODE_IP] });
    };
    const nft = (text: string) => runChecked("ip", ["netns", "exec", node, "nft", "-f", "-"], { stdin: text });
    const listed = async () => (await inNs(node, ["nft", "list", "table", "ip", table])).stdout.split("\n").map((l) => l.trim()).filter(Boolean).sort();
    let prev = ruleset(specs[0]);
    await nft(prev.text);
    for (const spec of [...specs.slice(1), ...specs.slice(0, -1).reverse()]) {
      const next = ruleset(spec);
      const changes = renderChanges(prev.state, next.state);
      expect(changes).toBeDefined();
      await nft(changes!);
      const incremental = await listed();
      await nft(next.text);
      expect(incremental).toEqual(await listed());
      prev = next;
    }
    await inNs(node, ["nft", "delete", "table", "ip", table]);
  });
});
