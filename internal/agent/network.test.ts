import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createHostNetwork, portMappings } from "./network.ts";
import { testPod } from "./testing.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function pod(uid: string) {
  const p = testPod(uid);
  p.metadata!.uid = uid;
  return p;
}

describe("host network (fake IPs)", () => {
  it("gives each pod its own address from the CIDR, the same one again on setUp, and reuses released ones", async () => {
    const net = createHostNetwork({ podCidr: "10.1.0.0/29" }); // hosts .1-.6; .1 is left for a gateway
    const ips = [];
    for (const uid of ["a", "b", "c", "d", "e"]) ips.push((await net.setUp(pod(uid))).ip);
    expect(ips).toEqual(["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]);
    expect((await net.setUp(pod("c"))).ip).toBe("10.1.0.4");
    await expect(net.setUp(pod("f"))).rejects.toThrow("no free address left in pod CIDR 10.1.0.0/29");
    await net.tearDown("b");
    await net.tearDown("b");
    expect((await net.setUp(pod("f"))).ip).toBe("10.1.0.3");
    expect((await net.list()).sort()).toEqual(["a", "c", "d", "e", "f"]);
  });

  it("remembers allocations across restarts when given a state directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-net-"));
    dirs.push(dir);
    const first = createHostNetwork({ podCidr: "10.1.0.0/24", stateDir: dir });
    const ip = (await first.setUp(pod("x"))).ip;
    const second = createHostNetwork({ podCidr: "10.1.0.0/24", stateDir: dir });
    expect(await second.list()).toEqual(["x"]);
    expect((await second.setUp(pod("x"))).ip).toBe(ip);
    expect((await second.setUp(pod("y"))).ip).not.toBe(ip);
  });
});

describe("portMappings", () => {
  it("collects hostPorts of every container for CNI's portmap plugin", () => {
    const p = testPod("web", {
      containers: [
        { name: "a", ports: [{ containerPort: 80, hostPort: 8080, protocol: "TCP" }, { containerPort: 9090 }] as any },
        { name: "b", ports: [{ containerPort: 53, hostPort: 5353, protocol: "UDP", hostIp: "127.0.0.1" }] as any },
      ],
    });
    expect(portMappings(p)).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: "tcp" },
      { hostPort: 5353, containerPort: 53, protocol: "udp", hostIP: "127.0.0.1" },
    ]);
  });
});
