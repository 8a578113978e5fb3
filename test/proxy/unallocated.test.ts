// Traffic to an address of the Service range that no Service holds must be rejected by the
// node's service proxy, not sent along the routes (on a real node: the default route, off the
// machine). Sent ONLY inside two network namespaces this test makes: a "client" node whose one
// route for the Service range leads over a veth to a "sink" namespace, which counts what
// arrives for that range and forwards nothing. The client has no default route (checked before
// any packet is sent), so nothing of this test can reach the host's network.
//
// The proxy is the product's (Service/Endpoints informers on a real apiserver + etcd, the
// product's ruleset) with its nft commands run inside the client namespace.
import { create } from "@bufbuild/protobuf";
import { spawn, type ChildProcess } from "node:child_process";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EndpointsSchema, type Endpoints } from "../../gen/skiff/v1alpha1/endpoints_pb.js";
import { ServiceSchema, type Service } from "../../gen/skiff/v1alpha1/service_pb.js";
import { waitFor } from "../../internal/agent/testing.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { createNetns } from "../../internal/network/netns.ts";
import { createServiceProxy, type ServiceProxy } from "../../internal/network/proxy/index.ts";
import { startControlPlane, type ControlPlane } from "../harness/control-plane.ts";
import { removeRun, runName, sweepCrashedRuns } from "../network/leftovers.ts";

const SERVICE_CIDR = "10.100.0.0/24";
const UNALLOCATED = "10.100.0.250";
const CLIENT_IP = "198.51.100.1";
const SINK_IP = "198.51.100.2";
const SINK_TABLE = "sink";

let cp: ControlPlane;
let run_: string;
let client: string;
let sink: string;
let server: ChildProcess | undefined;
let proxy: ServiceProxy | undefined;

const inNs = (ns: string, cmd: string[]) => runChecked("ip", ["netns", "exec", ns, ...cmd]);

/** One TCP connection from the client namespace: "connected:<first line>" or "error:<code>" or "timeout". */
async function connectFromClient(ip: string, port: number): Promise<string> {
  const script = `const s=require("net").connect(${port},"${ip}");s.setTimeout(3000,()=>{console.log("timeout");process.exit(0)});` +
    `s.on("data",d=>{console.log("connected:"+String(d).trim());process.exit(0)});s.on("error",e=>{console.log("error:"+e.code);process.exit(0)})`;
  const r = await inNs(client, [process.execPath, "-e", script]);
  return r.stdout.trim();
}

/** Packets for the Service range that reached the sink namespace (left the client). */
async function sinkCount(): Promise<number> {
  const r = await inNs(sink, ["nft", "-j", "list", "table", "ip", SINK_TABLE]);
  const counter = (JSON.parse(r.stdout).nftables as any[]).find((o) => o.rule)?.rule.expr.find((e: any) => e.counter)?.counter;
  return counter.packets as number;
}

beforeAll(async () => {
  await sweepCrashedRuns();
  run_ = runName();
  client = `${run_}-c`;
  sink = `${run_}-s`;
  await createNetns(client);
  await createNetns(sink);
  await runChecked("ip", ["-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", sink]);
  for (const [ns, ip] of [[client, CLIENT_IP], [sink, SINK_IP]]) {
    await runChecked("ip", ["-n", ns, "addr", "add", `${ip}/30`, "dev", "eth0"]);
    await runChecked("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    await runChecked("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }
  // The client's only way to the Service range: the sink (standing in for a default route).
  await runChecked("ip", ["-n", client, "route", "add", SERVICE_CIDR, "via", SINK_IP]);
  await runChecked("ip", ["netns", "exec", sink, "nft", "-f", "-"], {
    stdin: `table ip ${SINK_TABLE} {\n chain pre {\n  type filter hook prerouting priority 0; policy accept;\n  ip daddr ${SERVICE_CIDR} counter\n }\n}\n`,
  });
  // A backend for the Service that has one: on the sink, outside the Service range.
  server = spawn("ip", ["netns", "exec", sink, process.execPath, "-e", `require("net").createServer(s=>s.end("hello\\n")).listen(8080,"${SINK_IP}",()=>console.log("listening"))`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    server!.stdout!.once("data", () => resolve());
    server!.once("exit", (code) => reject(new Error(`backend server exited ${code}`)));
  });
  cp = await startControlPlane({ serviceCidr: SERVICE_CIDR });
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  server?.kill();
  await cp?.stop();
  if (run_) await removeRun(run_);
});

describe("the service proxy and the unallocated addresses of the Service range", () => {
  it("the client namespace has no default route: nothing sent here can leave the machine", async () => {
    const r = await runChecked("ip", ["-n", client, "-j", "-4", "route", "show", "table", "all"]);
    const routes = JSON.parse(r.stdout) as { dst: string; type?: string; table?: string }[];
    expect(routes.filter((x) => x.dst === "default")).toEqual([]);
    expect(routes.filter((x) => x.table !== "local").map((x) => x.dst).sort()).toEqual(["10.100.0.0/24", "198.51.100.0/30"]);
  });

  it("without the proxy's rules, a packet to an unallocated address follows the route (the fault)", async () => {
    const before = await sinkCount();
    // The sink answers "no route" or nothing: either way the packet left the client.
    expect(await connectFromClient(UNALLOCATED, 80)).not.toBe("error:ECONNREFUSED");
    expect(await sinkCount()).toBeGreaterThan(before);
  });

  it("rejects unallocated addresses and unserved ports with a TCP reset, on the node itself, while Services still work", async () => {
    const services = cp.client<Service>("Service");
    const endpoints = cp.client<Endpoints>("Endpoints");
    const web = await services.create(create(ServiceSchema, { metadata: { name: "web", namespace: "default" }, spec: { ports: [{ port: 80, targetPort: "8080" }] } as any }));
    const webIP = web.spec!.clusterIp;
    expect(webIP.startsWith("10.100.0.")).toBe(true);
    await endpoints.create(
      create(EndpointsSchema, { metadata: { name: "web", namespace: "default" }, subsets: [{ addresses: [{ ip: SINK_IP }], ports: [{ port: 8080, protocol: "TCP" }] }] } as any),
    );
    proxy = createServiceProxy({
      transport: cp.transport,
      log: pino({ level: "silent" }),
      table: run_,
      serviceCidr: SERVICE_CIDR,
      minSyncIntervalMs: 50,
      kernel: {
        apply: async (text) => void (await runChecked("ip", ["netns", "exec", client, "nft", "-f", "-"], { stdin: text })),
        deleteTable: async (name) => void (await run("ip", ["netns", "exec", client, "nft", "delete", "table", "ip", name])),
        flushConntrack: async () => "done",
        bridgeNetfilterOn: () => false,
        readAffinity: async () => new Map(),
      },
    });
    proxy.start();
    await proxy.waitForFirstSync();

    await waitFor("the Service answers through its ClusterIP", async () => (await connectFromClient(webIP, 80)) === "connected:hello", 20_000);
    const before = await sinkCount();
    expect(await connectFromClient(UNALLOCATED, 80)).toBe("error:ECONNREFUSED");
    expect(await connectFromClient(webIP, 81)).toBe("error:ECONNREFUSED");
    expect(await sinkCount()).toBe(before);

    // A deleted Service's address is an unallocated one from the next sync on.
    await services.delete("default", "web");
    await waitFor("the deleted Service's address is rejected", async () => (await connectFromClient(webIP, 80)) === "error:ECONNREFUSED", 20_000);
    expect(await sinkCount()).toBe(before);
  }, 90_000);
});
