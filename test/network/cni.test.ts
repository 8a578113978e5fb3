// Pod networking with the real CNI plugins (Debian containernetworking-plugins) in real network
// namespaces. Needs root. Every name (netns, bridge, CNI network) and the pod CIDR are unique to
// this run; everything is removed afterwards, and a crashed run's leftovers at the start.
// Traffic goes only to loopback and to the namespaces this test made.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCni, CniError, type Attachment, type Cni } from "../../internal/network/cni.ts";
import { run, sbinPath } from "../../internal/network/exec.ts";
import { cniChainName, readNatTable } from "../../internal/network/iptables.ts";
import { createNetns, deleteNetns, listNetns, netnsPath } from "../../internal/network/netns.ts";
import { freePort, LOOPBACK } from "../harness/ports.ts";
import { makeTempDir, removeTempDir } from "../harness/tmp.ts";
import { findRun, freePodCidr, removeRun, removeUnusedPortmapChains, runName, sweepCrashedRuns } from "./leftovers.ts";

const HTTP_PORT = 8080;

let name: string; // CNI network, bridge, and prefix of the netns names
let dir: string;
let cidr: string;
let cni: Cni;
let hostPort: number;
const ns = { a: "", b: "", c: "" };
const children: ChildProcess[] = [];
let podA: Attachment;
let podB: Attachment;

/** `busybox wget` with a hard bound (its own -T option segfaults in Debian's busybox-static 1.35). */
async function wget(url: string, inNetns?: string): Promise<{ ok: boolean; body: string }> {
  const wgetArgs = ["5", "busybox", "wget", "-qO-", url];
  const r = inNetns ? await run("ip", ["netns", "exec", inNetns, "timeout", ...wgetArgs]) : await run("timeout", wgetArgs);
  return { ok: r.code === 0, body: r.stdout };
}

/** Retries a fetch for up to ~5 s (the server may still be starting). */
async function fetchEventually(url: string, inNetns?: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 50; i++) {
    const r = await wget(url, inNetns);
    if (r.ok) return r.body;
    last = r.body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no answer from ${url}${inNetns ? ` in netns ${inNetns}` : ""}: ${last}`);
}

/** What the cni reported as attachments it had to make again (onReattach). */
const reattached: { podId: string; reason: string }[] = [];

async function ipIn(netns: string, ifName = "eth0"): Promise<string | undefined> {
  const r = await run("ip", ["-n", netns, "-j", "-4", "addr", "show", "dev", ifName], { env: { PATH: sbinPath() } });
  if (r.code !== 0) return undefined;
  const [link] = JSON.parse(r.stdout) as { addr_info: { local: string }[] }[];
  return link?.addr_info[0]?.local;
}

function leaseFile(ip: string): string {
  return join(dir, "state", "networks", name, ip);
}

/** Every step runs even when an earlier one fails (a half-made run must still be removed). */
async function cleanup(): Promise<void> {
  for (const c of children) c.kill("SIGTERM");
  children.length = 0;
  const errors: unknown[] = [];
  const step = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  if (cni) {
    for (const [pod, n] of [["pod-a", ns.a], ["pod-b", ns.b], ["pod-c", ns.c]]) {
      if (n) await step(() => cni.del(pod, netnsPath(n)));
    }
  }
  if (name) await step(() => removeRun(name));
  await step(() => removeUnusedPortmapChains());
  if (errors.length > 0) throw new AggregateError(errors, "network test cleanup failed");
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("test/network needs root (network namespaces, bridges, iptables)");
  await sweepCrashedRuns();
  name = runName();
  ns.a = `${name}-a`;
  ns.b = `${name}-b`;
  ns.c = `${name}-c`;
  cidr = await freePodCidr();
  dir = makeTempDir("skiff-net-");
  hostPort = await freePort();
  cni = createCni({
    confDir: join(dir, "conf"),
    stateDir: join(dir, "state"),
    network: { name, bridge: name, podCidr: cidr },
    portmap: true,
    onReattach: (podId, reason) => reattached.push({ podId, reason }),
  });
  await createNetns(ns.a);
  await createNetns(ns.b);
});

afterAll(async () => {
  try {
    await cleanup();
  } finally {
    if (dir) removeTempDir(dir);
  }
});

describe("CNI bridge + host-local + portmap", () => {
  const gateway = () => cidr.replace(/0\/24$/, "1");
  const inCidr = (ip: string) => ip.startsWith(cidr.replace(/0\/24$/, ""));

  it("creates named network namespaces idempotently, with lo up", async () => {
    expect(await createNetns(ns.a)).toBe(`/var/run/netns/${ns.a}`);
    expect(listNetns()).toEqual(expect.arrayContaining([ns.a, ns.b]));
    expect(await ipIn(ns.a, "lo")).toBe("127.0.0.1");
  });

  it("gives two pods IPs on the bridge", async () => {
    podA = await cni.add("pod-a", netnsPath(ns.a));
    podB = await cni.add("pod-b", netnsPath(ns.b), {
      portMappings: [{ hostPort, containerPort: HTTP_PORT, protocol: "tcp" }],
      args: { K8S_POD_NAME: "b" },
    });
    for (const pod of [podA, podB]) {
      expect(inCidr(pod.ip)).toBe(true);
      expect(pod.prefixLength).toBe(24);
      expect(pod.gateway).toBe(gateway());
      expect(existsSync(leaseFile(pod.ip))).toBe(true);
    }
    expect(podA.ip).not.toBe(podB.ip);
    expect(await ipIn(ns.a)).toBe(podA.ip);
    expect(await ipIn(ns.b)).toBe(podB.ip);
    expect(podA.interfaces.find((i) => i.sandbox)).toMatchObject({ name: "eth0", sandbox: netnsPath(ns.a) });
    // The bridge holds the gateway address.
    const br = await run("ip", ["-j", "-4", "addr", "show", "dev", name]);
    expect(JSON.parse(br.stdout)[0].addr_info.map((a: { local: string }) => a.local)).toContain(gateway());
    expect(cni.list().map((x) => x.podId).sort()).toEqual(["pod-a", "pod-b"]);
  });

  it("serves HTTP from pod B to pod A and to the host", async () => {
    const www = join(dir, "www");
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, "index.html"), `hello from ${name}\n`);
    // `timeout` bounds the server's life even if this run crashes; SIGTERM to it reaches httpd.
    const httpd = spawn("timeout", ["120", "ip", "netns", "exec", ns.b, "busybox", "httpd", "-f", "-p", String(HTTP_PORT), "-h", www], {
      stdio: "ignore",
      env: { PATH: sbinPath() },
    });
    children.push(httpd);
    expect(await fetchEventually(`http://${podB.ip}:${HTTP_PORT}/`, ns.a)).toBe(`hello from ${name}\n`);
    expect(await fetchEventually(`http://${podB.ip}:${HTTP_PORT}/`)).toBe(`hello from ${name}\n`);
  });

  it("maps the hostPort on 127.0.0.1 and on the bridge gateway", async () => {
    // portmap (snat on) sets route_localnet on the bridge and masquerades 127.0.0.1 sources.
    expect(await fetchEventually(`http://${LOOPBACK}:${hostPort}/`)).toBe(`hello from ${name}\n`);
    expect(await fetchEventually(`http://${gateway()}:${hostPort}/`)).toBe(`hello from ${name}\n`);
    // From another pod through the node's address (hairpin through the bridge).
    expect(await fetchEventually(`http://${gateway()}:${hostPort}/`, ns.a)).toBe(`hello from ${name}\n`);
  });

  it("CHECK passes, and a repeated ADD returns the same attachment", async () => {
    await cni.check("pod-a", netnsPath(ns.a));
    const again = await cni.add("pod-a", netnsPath(ns.a));
    expect(again.ip).toBe(podA.ip);
  });

  it("reports the plugin's error message (a taken IP) and rolls the failed ADD back", async () => {
    await createNetns(ns.c);
    const err = (await cni.add("pod-c", netnsPath(ns.c), { args: { IP: podA.ip } }).catch((e) => e)) as CniError;
    expect(err).toBeInstanceOf(CniError);
    expect(err.plugin).toBe("bridge");
    expect(err.msg).toMatch(/already|not available|in use|allocated/i);
    expect(err.message).toContain(podA.ip);
    expect(await ipIn(ns.c)).toBeUndefined();
    expect(cni.get("pod-c")).toBeUndefined();
  });

  it("DEL releases the IP, removes the interface and NAT rules; a re-ADD can take the IP again", async () => {
    await cni.del("pod-a", netnsPath(ns.a));
    expect(existsSync(leaseFile(podA.ip))).toBe(false);
    expect(await ipIn(ns.a)).toBeUndefined();
    expect((await readNatTable()).chains.has(cniChainName(name, "pod-a"))).toBe(false);
    expect(cni.get("pod-a")).toBeUndefined();

    const readded = await cni.add("pod-a", netnsPath(ns.a), { args: { IP: podA.ip } });
    expect(readded.ip).toBe(podA.ip);
    expect(existsSync(leaseFile(podA.ip))).toBe(true);
    expect(await fetchEventually(`http://${podB.ip}:${HTTP_PORT}/`, ns.a)).toBe(`hello from ${name}\n`);
  });

  it("DEL succeeds for an unknown pod, a missing netns, and twice", async () => {
    await cni.del("pod-unknown", netnsPath(`${name}-nope`));
    await cni.del("pod-unknown", "");
    await cni.del("pod-a", netnsPath(ns.a));
    await cni.del("pod-a", netnsPath(ns.a));
  });

  it("ADD of an attachment that no longer passes CHECK makes it again and says why", async () => {
    const first = await cni.add("pod-a", netnsPath(ns.a));
    expect(reattached).toEqual([]);
    const flushed = await run("ip", ["-n", ns.a, "addr", "flush", "dev", "eth0"]);
    expect(flushed.code).toBe(0);
    const again = await cni.add("pod-a", netnsPath(ns.a));
    expect(reattached.map((r) => r.podId)).toEqual(["pod-a"]);
    expect(reattached[0].reason).not.toBe("");
    expect(await ipIn(ns.a)).toBe(again.ip);
    expect(inCidr(first.ip) && inCidr(again.ip)).toBe(true);
    await cni.del("pod-a", netnsPath(ns.a));
  });

  it("DEL after the netns is gone still releases the IP and removes the masquerade chain bridge would leak", async () => {
    const podC = await cni.add("pod-c", netnsPath(ns.c));
    expect((await readNatTable()).chains.has(cniChainName(name, "pod-c"))).toBe(true);
    await deleteNetns(ns.c);
    await deleteNetns(ns.c); // idempotent
    expect(listNetns()).not.toContain(ns.c);
    await cni.del("pod-c", netnsPath(ns.c));
    expect(existsSync(leaseFile(podC.ip))).toBe(false);
    expect((await readNatTable()).chains.has(cniChainName(name, "pod-c"))).toBe(false);
  });

  it("teardown leaves no netns, bridge or NAT chains behind", async () => {
    await cni.del("pod-b", netnsPath(ns.b));
    expect((await readNatTable()).chains.has(cniChainName(name, "pod-b", "DN-"))).toBe(false);
    expect(await wget(`http://${LOOPBACK}:${hostPort}/`)).toMatchObject({ ok: false });
    await cleanup();
    expect(await findRun(name)).toEqual([]);
    expect(cni.list()).toEqual([]);
  });
});
