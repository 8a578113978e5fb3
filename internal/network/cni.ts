// Pod networking through CNI: one bridge network per node (bridge + host-local + portmap), its
// conflist written to confDir, and ADD/DEL/CHECK run over the list the way libcni runs a
// conflist (see README.md for the flow):
//   ADD   plugins in order; each gets the previous plugin's result as prevResult; the last
//         result is cached (stateDir/results) and returned.
//   DEL   plugins in reverse order, each with the cached result as prevResult (when there is
//         one); then leftover NAT rules are swept and the cache entry removed. Idempotent.
//   CHECK plugins in order, each with the cached result as prevResult.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createResultCache, type CacheEntry } from "./cache.ts";
import { buildConflist, type BridgeNetworkOptions, type NetworkConfigList, type PluginConf } from "./conflist.ts";
import { CniError, invokePlugin, type CniCommand } from "./invoke.ts";
import { removePodNatRules } from "./iptables.ts";

export { CniError };

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  /** Default "tcp". */
  protocol?: "tcp" | "udp" | "sctp";
  /** Host address to bind; default all. */
  hostIP?: string;
}

export interface CniOptions {
  /** Plugin search path (CNI_PATH, ":"-separated). Default /usr/lib/cni (Debian). */
  pluginDir?: string;
  /** Where the conflist is written (`10-<network>.conflist`). */
  confDir: string;
  /** host-local's leases (<stateDir>/networks) and the result cache (<stateDir>/results). Default /var/lib/cni. */
  stateDir?: string;
  network: BridgeNetworkOptions;
  /** Chain the portmap plugin (hostPorts). Default true. */
  portmap?: boolean;
  /** Interface name inside the pod. Default "eth0". */
  ifName?: string;
  /** Per plugin execution. Default 60 s. */
  timeoutMs?: number;
  /**
   * Runs after the plugins' DEL to remove NAT rules they leaked (bridge leaks its masquerade
   * chain when the netns is already gone). Default: removePodNatRules (iptables).
   */
  natCleanup?: (network: string, podId: string) => Promise<void>;
  /** Told why an attachment found in the cache failed CHECK and is made again (new IP). */
  onReattach?: (podId: string, reason: string) => void;
}

export interface AddOptions {
  portMappings?: PortMapping[];
  /** Extra CNI_ARGS (e.g. K8S_POD_NAME); IgnoreUnknown=1 is always sent first. */
  args?: Record<string, string>;
}

export interface CniInterface {
  name: string;
  mac?: string;
  /** The netns path, for interfaces inside the pod. */
  sandbox?: string;
}

export interface Attachment {
  podId: string;
  /** The pod's IPv4 address, e.g. "10.88.0.2". */
  ip: string;
  prefixLength: number;
  gateway?: string;
  interfaces: CniInterface[];
  /** The final CNI result, as the last plugin printed it. */
  result: Record<string, unknown>;
}

export interface Cni {
  readonly networkName: string;
  readonly conflistPath: string;
  readonly config: NetworkConfigList;
  /** Attaches the pod's netns; a second ADD for an attached pod returns the attachment (if CHECK passes). */
  add(podId: string, netnsPath: string, opts?: AddOptions): Promise<Attachment>;
  /** Detaches and releases the IP; succeeds for unknown pods and deleted namespaces. */
  del(podId: string, netnsPath: string): Promise<void>;
  /** Asks every plugin whether the pod's networking is as ADD left it; throws CniError if not. */
  check(podId: string, netnsPath: string): Promise<void>;
  /** The cached attachment of a pod, if ADD succeeded and no DEL followed. */
  get(podId: string): Attachment | undefined;
  /** Every cached attachment of this network (to find pods that no longer exist). */
  list(): Attachment[];
}

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function checkPodId(podId: string): void {
  if (!CONTAINER_ID.test(podId)) {
    throw new Error(`invalid CNI container id ${JSON.stringify(podId)}: letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
}

function checkPorts(ports: PortMapping[]): { hostPort: number; containerPort: number; protocol: string; hostIP?: string }[] {
  return ports.map((p) => {
    for (const [k, v] of [["hostPort", p.hostPort], ["containerPort", p.containerPort]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) throw new Error(`invalid port mapping: ${k} ${v} is not a port number`);
    }
    const protocol = (p.protocol ?? "tcp").toLowerCase();
    if (!["tcp", "udp", "sctp"].includes(protocol)) throw new Error(`invalid port mapping: protocol ${JSON.stringify(p.protocol)}`);
    return { hostPort: p.hostPort, containerPort: p.containerPort, protocol, ...(p.hostIP ? { hostIP: p.hostIP } : {}) };
  });
}

/** The pod's first IPv4 address from a CNI 1.0 (or 0.4) result. */
export function attachmentFromResult(podId: string, result: Record<string, unknown>): Attachment {
  const interfaces = (Array.isArray(result.interfaces) ? result.interfaces : []) as CniInterface[];
  const ips = (Array.isArray(result.ips) ? result.ips : []) as { address?: string; gateway?: string; interface?: number }[];
  const inPod = (i: { interface?: number }) => i.interface === undefined || Boolean(interfaces[i.interface]?.sandbox);
  const v4 = ips.filter((i) => typeof i.address === "string" && i.address.includes(".") && i.address.includes("/"));
  const chosen = v4.find(inPod) ?? v4[0];
  if (!chosen) throw new Error(`CNI result for ${podId} has no IPv4 address: ${JSON.stringify(result).slice(0, 300)}`);
  const [ip, len] = chosen.address!.split("/");
  return { podId, ip, prefixLength: Number(len), gateway: chosen.gateway, interfaces, result };
}

function writeIfChanged(path: string, text: string): void {
  try {
    if (readFileSync(path, "utf8") === text) return;
  } catch {
    // absent: write it
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

export function createCni(opts: CniOptions): Cni {
  const pluginPath = opts.pluginDir ?? "/usr/lib/cni";
  const stateDir = opts.stateDir ?? "/var/lib/cni";
  const ifName = opts.ifName ?? "eth0";
  const natCleanup = opts.natCleanup ?? removePodNatRules;
  const config = buildConflist({ network: opts.network, portmap: opts.portmap ?? true, ipamDataDir: join(stateDir, "networks") });
  const name = config.name;
  const configText = `${JSON.stringify(config, null, 2)}\n`;
  mkdirSync(opts.confDir, { recursive: true });
  const conflistPath = join(opts.confDir, `10-${name}.conflist`);
  writeIfChanged(conflistPath, configText);
  const cache = createResultCache(join(stateDir, "results"));

  // One operation per pod at a time (an ADD racing its own DEL would leak or fail oddly).
  const locks = new Map<string, Promise<unknown>>();
  function serialize<T>(podId: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(podId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    locks.set(podId, tail);
    void tail.then(() => {
      if (locks.get(podId) === tail) locks.delete(podId);
    });
    return next;
  }

  /** libcni's buildOneConfig: the plugin's conf + name + cniVersion (+ prevResult, runtimeConfig). */
  function pluginConfig(plugin: PluginConf, prevResult: unknown, capabilityArgs: Record<string, unknown>): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...plugin, name, cniVersion: config.cniVersion };
    if (prevResult !== undefined) conf.prevResult = prevResult;
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
      if (on && capabilityArgs[cap] !== undefined) runtimeConfig[cap] = capabilityArgs[cap];
    }
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    return conf;
  }

  function invoke(command: CniCommand, plugin: PluginConf, podId: string, netns: string, conf: Record<string, unknown>, args?: string) {
    return invokePlugin({ command, plugin: plugin.type, pluginPath, containerId: podId, netns, ifName, args, config: conf, timeoutMs: opts.timeoutMs });
  }

  function cniArgs(entry: Pick<CacheEntry, "cniArgs"> | undefined): string | undefined {
    const pairs = entry?.cniArgs ?? [];
    return pairs.length > 0 ? pairs.map(([k, v]) => `${k}=${v}`).join(";") : undefined;
  }

  async function doDel(podId: string, netnsPath: string): Promise<void> {
    const cached = cache.read(name, podId, ifName);
    const caps = cached?.capabilityArgs ?? {};
    for (const plugin of [...config.plugins].reverse()) {
      await invoke("DEL", plugin, podId, netnsPath, pluginConfig(plugin, cached?.result, caps), cniArgs(cached));
    }
    await natCleanup(name, podId);
    cache.remove(name, podId, ifName);
  }

  async function doCheck(podId: string, netnsPath: string): Promise<CacheEntry> {
    const cached = cache.read(name, podId, ifName);
    if (!cached?.result) {
      throw new CniError({ plugin: name, command: "CHECK", containerId: podId }, "no cached ADD result: the pod is not attached to this network");
    }
    for (const plugin of config.plugins) {
      await invoke("CHECK", plugin, podId, netnsPath, pluginConfig(plugin, cached.result, cached.capabilityArgs ?? {}), cniArgs(cached));
    }
    return cached;
  }

  async function doAdd(podId: string, netnsPath: string, addOpts: AddOptions): Promise<Attachment> {
    const capabilityArgs: Record<string, unknown> = {};
    if (addOpts.portMappings && addOpts.portMappings.length > 0) capabilityArgs.portMappings = checkPorts(addOpts.portMappings);
    const pairs: [string, string][] = [["IgnoreUnknown", "1"], ...Object.entries(addOpts.args ?? {})];

    const cached = cache.read(name, podId, ifName);
    if (cached?.result) {
      const same = JSON.stringify(cached.capabilityArgs ?? {}) === JSON.stringify(capabilityArgs) && JSON.stringify(cached.cniArgs ?? []) === JSON.stringify(pairs);
      if (same) {
        try {
          await doCheck(podId, netnsPath);
          return attachmentFromResult(podId, cached.result);
        } catch (err) {
          // not (or no longer) as ADD left it, or in another netns: start over
          opts.onReattach?.(podId, err instanceof Error ? err.message : String(err));
        }
      }
      await doDel(podId, netnsPath);
    }

    const args = pairs.map(([k, v]) => `${k}=${v}`).join(";");
    let prev: Record<string, unknown> | undefined;
    try {
      for (const plugin of config.plugins) {
        prev = (await invoke("ADD", plugin, podId, netnsPath, pluginConfig(plugin, prev, capabilityArgs), args)) ?? prev;
      }
      if (!prev) throw new CniError({ plugin: name, command: "ADD", containerId: podId }, "the plugins returned no result");
      const attachment = attachmentFromResult(podId, prev);
      cache.write({
        kind: "cniCacheV1",
        containerId: podId,
        config: Buffer.from(configText).toString("base64"),
        ifName,
        networkName: name,
        cniArgs: pairs,
        ...(Object.keys(capabilityArgs).length > 0 ? { capabilityArgs } : {}),
        result: prev,
      });
      return attachment;
    } catch (err) {
      // Undo the plugins that did run (the IP, the veth, NAT rules); the caller sees the ADD error.
      await doDel(podId, netnsPath).catch(() => undefined);
      throw err;
    }
  }

  return {
    networkName: name,
    conflistPath,
    config,
    async add(podId, netnsPath, addOpts = {}) {
      checkPodId(podId);
      return serialize(podId, () => doAdd(podId, netnsPath, addOpts));
    },
    async del(podId, netnsPath) {
      checkPodId(podId);
      return serialize(podId, () => doDel(podId, netnsPath));
    },
    async check(podId, netnsPath) {
      checkPodId(podId);
      await serialize(podId, () => doCheck(podId, netnsPath));
    },
    get(podId) {
      const cached = cache.read(name, podId, ifName);
      return cached?.result ? attachmentFromResult(podId, cached.result) : undefined;
    },
    list() {
      return cache.list(name).flatMap((e) => (e.result && e.ifName === ifName ? [attachmentFromResult(e.containerId, e.result)] : []));
    },
  };
}
