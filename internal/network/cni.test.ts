// createCni against fake plugins: shell scripts named bridge and portmap that record every call
// (env, stdin) and answer from files. The real plugins run in test/network/cni.test.ts.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { attachmentFromResult, createCni, CniError, type Cni } from "./cni.ts";

const FAKE = `#!/bin/sh
d=$(dirname "$0"); p=$(basename "$0")
n=$(cat "$d/seq" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/seq"
cat > "$d/call-$n.stdin"
{ echo "PLUGIN=$p"; env | grep '^CNI_' | sort; } > "$d/call-$n.env"
if [ -f "$d/fail-$p-$CNI_COMMAND" ]; then cat "$d/fail-$p-$CNI_COMMAND"; exit 1; fi
if [ "$CNI_COMMAND" = ADD ]; then cat "$d/result-$p.json"; fi
exit 0
`;

function result(ip: string, marker: string) {
  return {
    cniVersion: "1.0.0",
    interfaces: [{ name: "br0" }, { name: "veth1" }, { name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/var/run/netns/p" }],
    ips: [{ interface: 2, address: `${ip}/24`, gateway: "10.9.0.1" }],
    dns: {},
    marker,
  };
}

interface Call {
  plugin: string;
  env: Record<string, string>;
  stdin: any;
}

let dir: string;
let plugins: string;
let natCleanups: string[];
let cni: Cni;

function calls(): Call[] {
  const n = existsSync(join(plugins, "seq")) ? Number(readFileSync(join(plugins, "seq"), "utf8")) : 0;
  const out: Call[] = [];
  for (let i = 1; i <= n; i++) {
    const env = Object.fromEntries(
      readFileSync(join(plugins, `call-${i}.env`), "utf8")
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    out.push({ plugin: env.PLUGIN, env, stdin: JSON.parse(readFileSync(join(plugins, `call-${i}.stdin`), "utf8")) });
  }
  return out;
}

function resetCalls(): void {
  for (const f of readdirSync(plugins)) if (f === "seq" || f.startsWith("call-")) rmSync(join(plugins, f));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skiff-cni-unit-"));
  plugins = join(dir, "plugins");
  mkdirSync(plugins);
  for (const p of ["bridge", "portmap"]) {
    writeFileSync(join(plugins, p), FAKE);
    chmodSync(join(plugins, p), 0o755);
  }
  writeFileSync(join(plugins, "result-bridge.json"), JSON.stringify(result("10.9.0.2", "from-bridge")));
  writeFileSync(join(plugins, "result-portmap.json"), JSON.stringify(result("10.9.0.2", "from-portmap")));
  natCleanups = [];
  cni = createCni({
    pluginDir: plugins,
    confDir: join(dir, "conf"),
    stateDir: join(dir, "state"),
    network: { name: "testnet", bridge: "tb0", podCidr: "10.9.0.0/24" },
    natCleanup: async (net, id) => {
      natCleanups.push(`${net}/${id}`);
    },
  });
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("createCni", () => {
  it("writes the conflist", () => {
    expect(cni.conflistPath).toBe(join(dir, "conf", "10-testnet.conflist"));
    const written = JSON.parse(readFileSync(cni.conflistPath, "utf8"));
    expect(written).toEqual(cni.config);
    expect(written.plugins[0].ipam.dataDir).toBe(join(dir, "state", "networks"));
  });

  it("ADD runs the plugins in order, chaining prevResult, with CNI_* env and runtimeConfig for portmap only", async () => {
    const a = await cni.add("pod-1", "/var/run/netns/p", { portMappings: [{ hostPort: 8080, containerPort: 80 }], args: { K8S_POD_NAME: "web" } });
    expect(a).toMatchObject({ podId: "pod-1", ip: "10.9.0.2", prefixLength: 24, gateway: "10.9.0.1" });
    expect(a.result.marker).toBe("from-portmap");
    expect(a.interfaces.map((i) => i.name)).toEqual(["br0", "veth1", "eth0"]);

    const [bridge, portmap] = calls();
    expect(bridge.plugin).toBe("bridge");
    expect(bridge.env).toMatchObject({
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "pod-1",
      CNI_NETNS: "/var/run/netns/p",
      CNI_IFNAME: "eth0",
      CNI_PATH: plugins,
      CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
    });
    expect(bridge.stdin).toMatchObject({ type: "bridge", name: "testnet", cniVersion: "1.0.0", bridge: "tb0" });
    expect(bridge.stdin.prevResult).toBeUndefined();
    expect(bridge.stdin.runtimeConfig).toBeUndefined();
    expect(portmap.plugin).toBe("portmap");
    expect(portmap.stdin.prevResult.marker).toBe("from-bridge");
    expect(portmap.stdin.runtimeConfig).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
    expect(cni.get("pod-1")?.ip).toBe("10.9.0.2");
    expect(cni.list().map((x) => x.podId)).toEqual(["pod-1"]);

    // libcni's cache format
    const cached = JSON.parse(readFileSync(join(dir, "state", "results", "testnet-pod-1-eth0"), "utf8"));
    expect(cached).toMatchObject({ kind: "cniCacheV1", containerId: "pod-1", ifName: "eth0", networkName: "testnet" });
    expect(JSON.parse(Buffer.from(cached.config, "base64").toString())).toEqual(cni.config);
  });

  it("DEL runs the plugins in reverse with the cached result and runtimeConfig, then sweeps NAT and forgets the pod", async () => {
    await cni.add("pod-1", "/var/run/netns/p", { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "udp" }] });
    resetCalls();
    await cni.del("pod-1", "/var/run/netns/p");
    const [portmap, bridge] = calls();
    expect(portmap.plugin).toBe("portmap");
    expect(portmap.env.CNI_COMMAND).toBe("DEL");
    expect(portmap.stdin.prevResult.marker).toBe("from-portmap");
    expect(portmap.stdin.runtimeConfig.portMappings[0].protocol).toBe("udp");
    expect(bridge.plugin).toBe("bridge");
    expect(bridge.stdin.prevResult.marker).toBe("from-portmap");
    expect(natCleanups).toEqual(["testnet/pod-1"]);
    expect(cni.get("pod-1")).toBeUndefined();
    expect(cni.list()).toEqual([]);
  });

  it("DEL of an unknown pod runs the plugins without prevResult and succeeds", async () => {
    await cni.del("never-added", "/var/run/netns/gone");
    const c = calls();
    expect(c.map((x) => `${x.plugin} ${x.env.CNI_COMMAND}`)).toEqual(["portmap DEL", "bridge DEL"]);
    expect(c[0].stdin.prevResult).toBeUndefined();
  });

  it("a plugin's error JSON becomes a CniError carrying its msg, and a failed ADD is rolled back", async () => {
    writeFileSync(join(plugins, "fail-portmap-ADD"), JSON.stringify({ cniVersion: "1.0.0", code: 7, msg: "bad port", details: "hostPort 0" }));
    const err = (await cni.add("pod-2", "/var/run/netns/p").catch((e) => e)) as CniError;
    expect(err).toBeInstanceOf(CniError);
    expect(err.message).toBe("CNI portmap ADD for pod-2: bad port: hostPort 0 (code 7)");
    expect(err).toMatchObject({ plugin: "portmap", command: "ADD", code: 7, msg: "bad port", details: "hostPort 0" });
    expect(calls().map((x) => `${x.plugin} ${x.env.CNI_COMMAND}`)).toEqual(["bridge ADD", "portmap ADD", "portmap DEL", "bridge DEL"]);
    expect(cni.get("pod-2")).toBeUndefined();
  });

  it("a plugin failing without JSON reports its stderr; a missing plugin is named", async () => {
    writeFileSync(join(plugins, "fail-bridge-DEL"), "");
    writeFileSync(join(plugins, "bridge"), "#!/bin/sh\necho 'something broke' >&2\nexit 3\n");
    await expect(cni.del("pod-3", "")).rejects.toThrow("CNI bridge DEL for pod-3: something broke");
    rmSync(join(plugins, "bridge"));
    await expect(cni.add("pod-3", "/x")).rejects.toThrow(`CNI bridge ADD for pod-3: plugin "bridge" not found in ${plugins}`);
  });

  it("CHECK passes the cached result to every plugin in order; without one it fails", async () => {
    await expect(cni.check("pod-4", "/var/run/netns/p")).rejects.toThrow(/no cached ADD result/);
    await cni.add("pod-4", "/var/run/netns/p");
    resetCalls();
    await cni.check("pod-4", "/var/run/netns/p");
    const c = calls();
    expect(c.map((x) => `${x.plugin} ${x.env.CNI_COMMAND}`)).toEqual(["bridge CHECK", "portmap CHECK"]);
    expect(c.every((x) => x.stdin.prevResult.marker === "from-portmap")).toBe(true);
  });

  it("a repeated ADD returns the attachment when CHECK passes, and redoes it when CHECK fails", async () => {
    await cni.add("pod-5", "/var/run/netns/p");
    resetCalls();
    expect((await cni.add("pod-5", "/var/run/netns/p")).ip).toBe("10.9.0.2");
    expect(calls().map((x) => `${x.plugin} ${x.env.CNI_COMMAND}`)).toEqual(["bridge CHECK", "portmap CHECK"]);

    resetCalls();
    writeFileSync(join(plugins, "fail-bridge-CHECK"), JSON.stringify({ code: 999, msg: "eth0 not found" }));
    await cni.add("pod-5", "/var/run/netns/q");
    expect(calls().map((x) => `${x.plugin} ${x.env.CNI_COMMAND}`)).toEqual([
      "bridge CHECK",
      "portmap DEL",
      "bridge DEL",
      "bridge ADD",
      "portmap ADD",
    ]);
  });

  it("rejects container ids the CNI spec forbids", async () => {
    await expect(cni.add("../x", "/p")).rejects.toThrow(/invalid CNI container id/);
    await expect(cni.del("", "/p")).rejects.toThrow(/invalid CNI container id/);
  });

  it("validates port mappings", async () => {
    await expect(cni.add("pod-6", "/p", { portMappings: [{ hostPort: 0, containerPort: 80 }] })).rejects.toThrow(/hostPort 0/);
  });
});

describe("attachmentFromResult", () => {
  it("prefers the IPv4 address on the interface inside the pod", () => {
    const r = {
      interfaces: [{ name: "br0" }, { name: "eth0", sandbox: "/ns" }],
      ips: [
        { interface: 0, address: "10.0.0.1/24" },
        { interface: 1, address: "fd00::2/64" },
        { interface: 1, address: "10.0.0.2/24", gateway: "10.0.0.1" },
      ],
    };
    expect(attachmentFromResult("p", r)).toMatchObject({ ip: "10.0.0.2", prefixLength: 24, gateway: "10.0.0.1" });
    expect(() => attachmentFromResult("p", { ips: [] })).toThrow(/no IPv4 address/);
  });
});
