// The node agent on real parts (cluster.ts): the node it registers, and a pod's life as a user
// sees it — an IP and a page served from it, what the container finds inside (/etc files,
// hostname, env, command/args, workingDir), a shared emptyDir, graceful deletion with SIGTERM
// first, and nothing left behind on the node once a pod is deleted.
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../gen/skiff/v1alpha1/coordination_pb.js";
import type { Node } from "../../gen/skiff/v1alpha1/node_pb.js";
import { memoryQuantity } from "../../internal/agent/host-info.ts";
import { parseCidr } from "../../internal/network/conflist.ts";
import { HOST_RESOLV_CONF, INDEX_HTML, condition, cstatus, leftoversOf, ms, startCluster, waitFor, wget, type Cluster } from "./cluster.ts";

let c: Cluster;

beforeAll(async () => {
  c = await startCluster();
}, 120_000);

afterAll(async () => {
  await c?.stop();
}, 120_000);

function ipv4ToNumber(ip: string): number {
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

describe("node registration", () => {
  it("registers the Node with capacity, allocatable, addresses and Ready, and keeps renewing its Lease", async () => {
    const node = await c.cp.client<Node>("Node").get("", c.nodeName);
    const s = node.status!;
    expect(s.capacity).toEqual({ cpu: String(os.availableParallelism()), memory: memoryQuantity(os.totalmem()), pods: "110" });
    expect(s.allocatable).toEqual(s.capacity);
    expect(s.addresses.map((a) => [a.type, a.address])).toEqual([["InternalIP", "127.0.0.1"], ["Hostname", os.hostname()]]);
    const ready = s.conditions.find((x) => x.type === "Ready");
    expect(ready).toMatchObject({ status: "True", reason: "KubeletReady" });
    expect(s.nodeInfo!.containerRuntimeVersion).toMatch(/^containerd:\/\/\d/);
    expect(s.daemonEndpoints!.kubeletEndpoint!.port).toBe(c.agent.port());
    expect(node.spec!.podCidr).toBe(c.podCidr);

    const leases = c.cp.client<Lease>("Lease");
    const first = await leases.get("skiff-system", c.nodeName);
    expect(first.spec!.holderIdentity).toBe(c.nodeName);
    // Renewed every heartbeat (500 ms here): renewTime moves on, twice.
    let last = ms(first.spec!.renewTime);
    for (let i = 0; i < 2; i++) {
      const renewed = await waitFor("lease renewed", async () => {
        const l = await leases.get("skiff-system", c.nodeName);
        return ms(l.spec!.renewTime) > last ? l : undefined;
      }, 15_000);
      last = ms(renewed.spec!.renewTime);
    }
    expect(last).toBeGreaterThan(ms(first.spec!.renewTime));
  });
});

describe("pods on containerd + CNI", () => {
  it("runs httpd with an IP from the pod CIDR and serves a page to the host; deleting the pod leaves nothing behind", async () => {
    const created = await c.createPod("web", {
      containers: [{ name: "web", readinessProbe: { httpGet: { path: "/index.html", port: "80" }, periodSeconds: 1 } as any }],
    });
    const uid = created.metadata!.uid;
    const p = await c.waitForPod("web", "Running and Ready", (p) => p.status?.phase === "Running" && condition(p, "Ready") === "True");
    const ip = p.status!.podIp;
    const cidr = parseCidr(c.podCidr);
    expect(ipv4ToNumber(ip)).toBeGreaterThan(cidr.first);
    expect(ipv4ToNumber(ip)).toBeLessThanOrEqual(cidr.last);
    expect(cstatus(p, "web")!.containerId).toMatch(/^containerd:\/\/[0-9a-f]{32}$/);
    expect(await wget(`http://${ip}/`)).toBe(INDEX_HTML);

    // Everything the pod holds on the node, seen while it runs (so the check below is a real one).
    const containerIds = (await c.containersOf(uid)).map((x) => x.id);
    expect(containerIds).toHaveLength(1);
    const held = await leftoversOf(c, { uid, ip, containerIds });
    expect(held).toEqual(expect.arrayContaining([
      `container ${containerIds[0]}`,
      `task ${containerIds[0]}`,
      `snapshot ${containerIds[0]}`,
      `netns ${c.networkName}-${uid}`,
      `IP lease ${ip}`,
      `pod dir ${uid}`,
    ]));

    await c.pods.delete("default", "web", { gracePeriodSeconds: 2n });
    await c.waitForGone("web");
    expect(await leftoversOf(c, { uid, ip, containerIds })).toEqual([]);
    await expect(wget(`http://${ip}/`)).rejects.toThrow();
  });

  it("reports a failing command's exit code and keeps its output for logs", async () => {
    await c.createPod("echo", {
      restartPolicy: "Never",
      containers: [{ name: "app", command: ["sh", "-c", "echo hello; echo oops >&2; exit 3"] }],
    });
    const p = await c.waitForPod("echo", "Failed", (p) => p.status?.phase === "Failed");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 3, reason: "Error" });
    expect(cstatus(p)!.restartCount).toBe(0);
    // stdout and stderr are copied separately: their order in the file is not guaranteed.
    expect((await c.logs("echo")).split("\n").sort()).toEqual(["", "hello", "oops"]);
  });

  it("gives the container /etc/hosts, /etc/hostname, /etc/resolv.conf and the pod's name as hostname, and honours env, command, args and workingDir", async () => {
    const script = [
      'echo "hostname=$(hostname)"',
      'echo "etc-hostname=$(cat /etc/hostname)"',
      'echo "pwd=$(pwd)"',
      'echo "greeting=$GREETING"',
      'echo "msg=$MSG"',
      'echo "pod=$POD_NAME"',
      'echo "arg0=$0"',
      'echo "arg1=$1"',
      'echo "--- hosts"',
      "cat /etc/hosts",
      'echo "--- resolv.conf"',
      "cat /etc/resolv.conf",
      'echo "--- end"',
    ].join("; ");
    await c.createPod("inspect", {
      restartPolicy: "Never",
      // The node's own resolv.conf (the cluster's is tested in dns.test.ts).
      dnsPolicy: "Default",
      containers: [{
        name: "app",
        command: ["sh", "-c"],
        // $(VAR) in args is expanded from the container's env, as in Kubernetes.
        args: [script, "$(GREETING)-arg", "literal $$(GREETING)"],
        workingDir: "/www",
        env: [
          { name: "GREETING", value: "hello" },
          { name: "MSG", value: "$(GREETING) world" },
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        ] as any,
      }],
    });
    const p = await c.waitForPod("inspect", "Succeeded", (p) => p.status?.phase === "Succeeded");
    expect(cstatus(p)!.state!.terminated).toMatchObject({ exitCode: 0, reason: "Completed" });
    const out = await c.logs("inspect");
    const [head, rest] = out.split("--- hosts\n");
    const [hosts, rest2] = rest.split("--- resolv.conf\n");
    const [resolv] = rest2.split("--- end\n");
    expect(head.trim().split("\n")).toEqual([
      "hostname=inspect",
      "etc-hostname=inspect",
      "pwd=/www",
      "greeting=hello",
      "msg=hello world",
      "pod=inspect",
      "arg0=hello-arg",
      "arg1=literal $(GREETING)",
    ]);
    expect(hosts).toContain("127.0.0.1\tlocalhost\n");
    expect(hosts).toContain(`${p.status!.podIp}\tinspect\n`);
    expect(resolv).toBe(HOST_RESOLV_CONF);

    // A finished pod gives its address back at once; deleting it removes the rest.
    const uid = p.metadata!.uid;
    const ip = p.status!.podIp;
    const containerIds = (await c.containersOf(uid)).map((x) => x.id);
    await waitFor("network released", async () => (await leftoversOf(c, { uid, ip, containerIds })).every((x) => !/^(netns|IP lease)/.test(x)), 10_000);
    expect(await c.logs("inspect")).toBe(out); // the log stays until the pod is deleted
    await c.pods.delete("default", "inspect");
    await c.waitForGone("inspect");
    expect(await leftoversOf(c, { uid, ip, containerIds })).toEqual([]);
  });

  it("shares an emptyDir between two containers of a pod and removes it with the pod", async () => {
    const created = await c.createPod("shared", {
      terminationGracePeriodSeconds: 1n,
      volumes: [{ name: "data", emptyDir: {} }] as any,
      containers: [
        { name: "writer", command: ["sh", "-c", "echo from-the-writer > /data/msg; exec sleep 3600"], volumeMounts: [{ name: "data", mountPath: "/data" }] as any },
        { name: "reader", command: ["sh", "-c", "until [ -f /data/msg ]; do sleep 0.1; done; cat /data/msg; exec sleep 3600"], volumeMounts: [{ name: "data", mountPath: "/data" }] as any },
      ],
    });
    const uid = created.metadata!.uid;
    const p = await c.waitForPod("shared", "Running", (p) => p.status?.phase === "Running" && p.status.containerStatuses.every((s) => s.state?.running));
    await waitFor("the reader printed the writer's file", async () => (await c.logs("shared", { container: "reader" })) === "from-the-writer\n", 15_000);
    const hostDir = join(c.rootDir, "pods", uid, "volumes", "data");
    expect(readFileSync(join(hostDir, "msg"), "utf8")).toBe("from-the-writer\n");
    const containerIds = (await c.containersOf(uid)).map((x) => x.id);

    await c.pods.delete("default", "shared");
    await c.waitForGone("shared");
    expect(existsSync(hostDir)).toBe(false);
    expect(await leftoversOf(c, { uid, ip: p.status!.podIp, containerIds })).toEqual([]);
  });

  it("deletes gracefully: SIGTERM first, SIGKILL after the grace period, and the pod object goes only after its containers", async () => {
    const grace = 5;
    const out = join(c.dir, "graceful-out");
    const created = await c.createPod("graceful", {
      terminationGracePeriodSeconds: BigInt(grace),
      volumes: [{ name: "out", hostPath: { path: out, type: "DirectoryOrCreate" } }] as any,
      containers: [
        {
          // Traps TERM, notes it and exits at once.
          name: "polite",
          command: ["sh", "-c", "trap 'echo got TERM > /out/polite; exit 0' TERM; echo up > /out/polite-up; sleep 3600 & wait"],
          volumeMounts: [{ name: "out", mountPath: "/out" }] as any,
        },
        {
          // Notes TERM and carries on: only SIGKILL ends it.
          name: "stubborn",
          command: ["sh", "-c", "trap 'echo got TERM, staying > /out/stubborn' TERM; echo up > /out/stubborn-up; while true; do sleep 1; done"],
          volumeMounts: [{ name: "out", mountPath: "/out" }] as any,
        },
      ],
    });
    const uid = created.metadata!.uid;
    await c.waitForPod("graceful", "Running", (p) => p.status?.phase === "Running" && p.status.containerStatuses.every((s) => s.state?.running));
    await waitFor("both traps installed", () => existsSync(join(out, "polite-up")) && existsSync(join(out, "stubborn-up")), 15_000);

    const deletedAt = Date.now();
    await c.pods.delete("default", "graceful");
    await waitFor("both containers got SIGTERM", () => existsSync(join(out, "polite")) && existsSync(join(out, "stubborn")), 15_000);
    expect(readFileSync(join(out, "polite"), "utf8")).toBe("got TERM\n");
    expect(readFileSync(join(out, "stubborn"), "utf8")).toBe("got TERM, staying\n");

    // Within the grace period: the pod is still there (terminating) and the stubborn container still runs.
    const during = await c.getPod("graceful");
    expect(during?.metadata?.deletionTimestamp).toBeDefined();
    expect(during?.metadata?.deletionGracePeriodSeconds).toBe(BigInt(grace));
    const stubborn = (await c.containersOf(uid, "stubborn")).at(-1);
    expect(stubborn?.state).toBe("running");

    // Until the pod object disappears, watch that its containers are gone by then.
    let goneAt = 0;
    await waitFor("pod graceful gone", async () => {
      if ((await c.getPod("graceful")) !== undefined) return false;
      goneAt = Date.now();
      return true;
    }, 30_000);
    expect(await c.containersOf(uid)).toEqual([]);
    expect(goneAt - deletedAt).toBeGreaterThanOrEqual(grace * 1000);
  });
});
