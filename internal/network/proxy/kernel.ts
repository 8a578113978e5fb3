// The proxy's only contact with the kernel: `nft` (load a ruleset, list or delete a table) and
// `conntrack` (forget UDP flows to backends that are gone). Both are Debian packages (nftables,
// conntrack); a missing conntrack binary only costs stale UDP flows their timeout.
import { readFileSync } from "node:fs";
import { run, runChecked, sbinPath } from "../exec.ts";
import { AFFINITY_PREFIX, deleteTableText, type AffinityClient } from "./ruleset.ts";
import type { UdpFlush } from "./model.ts";

/** Loads a ruleset text in one nft transaction (all of it or, on error, none of it). */
export async function applyRuleset(text: string): Promise<void> {
  await runChecked("nft", ["-f", "-"], { stdin: text, timeoutMs: 30_000 });
}

/** Removes table `ip <name>` if it exists. */
export async function deleteTable(name: string): Promise<void> {
  await applyRuleset(deleteTableText(name));
}

/** Names of the host's `ip` family tables. */
export async function listTables(): Promise<string[]> {
  const r = await runChecked("nft", ["list", "tables", "ip"]);
  return r.stdout
    .split("\n")
    .map((l) => /^table ip (\S+)/.exec(l.trim())?.[1])
    .filter((n): n is string => n !== undefined);
}

/** `nft list table ip <name>`, or undefined when there is no such table. */
export async function listTable(name: string): Promise<string | undefined> {
  const r = await run("nft", ["list", "table", "ip", name], { env: { ...process.env, PATH: sbinPath() } });
  if (r.code === 0) return r.stdout;
  if (/No such file or directory/.test(r.stderr)) return undefined;
  throw new Error(`nft list table ip ${name}: ${r.stderr.trim()}`);
}

/** Affinity set elements from `nft -j list table` output, by set name. Pure. */
export function parseAffinityElements(json: string): Map<string, AffinityClient[]> {
  const out = new Map<string, AffinityClient[]>();
  for (const o of (JSON.parse(json) as { nftables?: { set?: { name: string; elem?: unknown[] } }[] }).nftables ?? []) {
    const set = o.set;
    if (!set?.name.startsWith(AFFINITY_PREFIX)) continue;
    const items: AffinityClient[] = [];
    for (const e of set.elem ?? []) {
      const elem = (e as { elem?: { val?: unknown; expires?: unknown } }).elem;
      if (typeof elem?.val !== "string" || typeof elem.expires !== "number" || elem.expires < 1) continue;
      if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(elem.val)) continue;
      items.push({ ip: elem.val, expiresSeconds: Math.floor(elem.expires) });
    }
    if (items.length > 0) out.set(set.name, items);
  }
  return out;
}

/** The clients the affinity sets of table `ip <name>` hold now (none when there is no table). */
export async function readAffinity(name: string): Promise<Map<string, AffinityClient[]>> {
  const r = await run("nft", ["-j", "list", "table", "ip", name], { env: { ...process.env, PATH: sbinPath() }, timeoutMs: 30_000 });
  if (r.code !== 0) return new Map();
  return parseAffinityElements(r.stdout);
}

/**
 * Whether bridged IPv4 traffic passes the ip hooks (br_netfilter, bridge-nf-call-iptables=1):
 * then a backend's reply to a pod on the same bridge meets conntrack and is un-NATed.
 */
export function bridgeNetfilterOn(): boolean {
  try {
    return readFileSync("/proc/sys/net/bridge/bridge-nf-call-iptables", "utf8").trim() === "1";
  } catch {
    return false;
  }
}

/** The conntrack deletions a flush needs, as argument lists (pure, for tests). */
export function conntrackDeletions(f: UdpFlush): string[][] {
  const out: string[][] = [];
  for (const r of f.removedBackends) {
    out.push(["-D", "-p", "udp", "--dst-nat", r.backend.ip, "--reply-port-src", String(r.backend.port)]);
  }
  for (const s of f.newlyServed) {
    if (s.clusterIP) out.push(["-D", "-p", "udp", "--orig-dst", s.clusterIP, "--orig-port-dst", String(s.port)]);
    if (s.nodePort) out.push(["-D", "-p", "udp", "--orig-port-dst", String(s.nodePort)]);
  }
  return out;
}

export type ConntrackResult = "done" | "missing";

/** Runs the deletions; "missing" when there is no conntrack binary. Zero matches is success. */
export async function flushConntrack(f: UdpFlush): Promise<ConntrackResult> {
  for (const args of conntrackDeletions(f)) {
    let r;
    try {
      r = await run("conntrack", args, { env: { ...process.env, PATH: sbinPath() }, timeoutMs: 10_000 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return "missing";
      throw err;
    }
    // conntrack exits 1 when nothing matched ("0 flow entries have been deleted").
    if (r.code !== 0 && !/0 flow entries/.test(r.stderr)) throw new Error(`conntrack ${args.join(" ")}: ${r.stderr.trim()}`);
  }
  return "done";
}
