// The node bridge made before any pod (where the agent's DNS listens), then used as it is by the
// real CNI bridge plugin; a pod reaches a DNS server on the gateway address. Needs root. Names
// and the pod CIDR are unique to this run; a crashed run's leftovers are removed at the start.
import { create } from "@bufbuild/protobuf";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceSchema } from "../../gen/skiff/v1alpha1/service_pb.js";
import { startDnsServer, type DnsServer } from "../../internal/dns/server.ts";
import { createZone } from "../../internal/dns/zone.ts";
import { ensureBridge } from "../../internal/network/bridge.ts";
import { createCni, type Cni } from "../../internal/network/cni.ts";
import { formatIPv4, parseCidr, parseIPv4 } from "../../internal/network/conflist.ts";
import { run, runChecked } from "../../internal/network/exec.ts";
import { createNetns, netnsPath } from "../../internal/network/netns.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { freePodCidr, removeRun, runName, sweepCrashedRuns } from "./leftovers.ts";

let name = "";
let dir = "";
let cidr = "";
let gateway = "";
let cni: Cni | undefined;
let dns: DnsServer | undefined;
const pod = () => `${name}-pod`;

beforeAll(async () => {
  await sweepCrashedRuns();
  name = runName();
  dir = makeTempDir("skiff-bridge-");
  cidr = await freePodCidr();
  gateway = formatIPv4(parseCidr(cidr).first);
});
afterAll(async () => {
  await dns?.close();
  if (cni) await cni.del("pod", netnsPath(pod())).catch(() => undefined);
  if (name) await removeRun(name);
  if (dir) removeTempDir(dir);
});

async function addresses(): Promise<string[]> {
  const r = await runChecked("ip", ["-j", "-4", "addr", "show", "dev", name]);
  const [link] = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number }[]; operstate: string }[];
  return link.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
}

describe("the node bridge before any pod", () => {
  it("is made with the gateway address, idempotently, and the CNI bridge plugin then uses it as it is", async () => {
    const prefix = parseCidr(cidr).prefix;
    await ensureBridge(name, gateway, prefix);
    await ensureBridge(name, gateway, prefix);
    expect(await addresses()).toEqual([`${gateway}/${prefix}`]);

    const service = create(ServiceSchema, { metadata: { name: "web", namespace: "default" }, spec: { clusterIp: "10.96.7.7", ports: [{ port: 80 }] } });
    dns = await startDnsServer({
      zone: createZone("cluster.local", { service: (ns, n) => (ns === "default" && n === "web" ? service : undefined), endpoints: () => undefined }),
      host: gateway,
      port: 53,
    });

    cni = createCni({ confDir: join(dir, "conf"), stateDir: join(dir, "state"), network: { name, bridge: name, podCidr: cidr }, portmap: false });
    await createNetns(pod());
    const att = await cni.add("pod", netnsPath(pod()));
    const ip = parseIPv4(att.ip)!;
    expect(ip).toBeGreaterThan(parseCidr(cidr).first); // a pod address, not the gateway's
    expect(ip).toBeLessThanOrEqual(parseCidr(cidr).last);
    expect(await addresses()).toEqual([`${gateway}/${prefix}`]);

    // From inside the pod's namespace, over UDP to the gateway address.
    const r = await run("ip", ["netns", "exec", pod(), "busybox", "nslookup", "web.default.svc.cluster.local", gateway]);
    expect(r.stdout).toMatch(/Address: 10\.96\.7\.7$/m);
  });

  it("keeps its MAC address when a port with a lower one joins, so the pods attached before still pass CNI CHECK", async () => {
    const mac = async () => (JSON.parse((await runChecked("ip", ["-j", "link", "show", "dev", name])).stdout) as { address: string }[])[0].address;
    const before = await mac();
    // The lowest possible address on a new port (its peer in the pod's netns: gone with it).
    await runChecked("ip", ["link", "add", `${name}x`, "address", "00:00:00:00:00:01", "type", "veth", "peer", "name", "extra", "netns", pod()]);
    await runChecked("ip", ["link", "set", `${name}x`, "master", name, "up"]);
    expect(await mac()).toBe(before);
    // What an agent restart runs before it would tear the pod's network down and build it anew.
    await cni!.check("pod", netnsPath(pod()));
  });
});
