// The NAT rules CNI plugins leave behind, and how to remove them.
//
// `bridge` (ipMasq) adds, per container, `POSTROUTING -s <podIP> -j CNI-<hash>` and the chain
// CNI-<hash>; `portmap` adds `CNI-HOSTPORT-DNAT -j CNI-DN-<hash>` and the chain CNI-DN-<hash>.
// <hash> is sha512(network name + container id) in hex, the chain name cut at 28 characters
// (the plugins' utils.FormatChainName). Every such rule carries the comment
// `name: "<network>" id: "<container id>"` (portmap's: `dnat name: …`).
//
// bridge v1.1.1 removes its masquerade rules on DEL only when it still finds the pod's interface
// in the netns: a DEL after the netns is gone (or for a new netns) leaks them. removePodNatRules
// cleans up after it. Removal is one atomic `iptables-restore --noflush` batch, and only IPv4.

import { createHash } from "node:crypto";
import { runChecked } from "./exec.ts";

const MAX_CHAIN = 28;

/** The plugins' chain name for a (network, container): "CNI-" + prefix + sha512 hex, 28 characters. */
export function cniChainName(network: string, containerId: string, prefix = ""): string {
  const hex = createHash("sha512").update(network + containerId).digest("hex");
  return `CNI-${prefix}${hex}`.slice(0, MAX_CHAIN);
}

export interface NatTable {
  chains: Set<string>;
  /** Rules as `iptables -S` prints them: "-A CHAIN …". */
  rules: string[];
}

export async function readNatTable(): Promise<NatTable> {
  const r = await runChecked("iptables", ["-w", "5", "-t", "nat", "-S"]);
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of r.stdout.split("\n")) {
    if (line.startsWith("-N ")) chains.add(line.slice(3).trim());
    else if (line.startsWith("-A ")) rules.push(line);
  }
  return { chains, rules };
}

function jumpTarget(rule: string): string | undefined {
  return / -j (\S+)/.exec(rule)?.[1];
}

/** The restore script that deletes every rule jumping to a target chain, then the chains. */
export function removalScript(table: NatTable, targets: Set<string>): string | undefined {
  const lines: string[] = [];
  for (const rule of table.rules) {
    const target = jumpTarget(rule);
    if (target && targets.has(target) && !targets.has(rule.split(" ")[1])) lines.push(`-D ${rule.slice(3)}`);
  }
  const chains = [...targets].filter((c) => table.chains.has(c));
  for (const c of chains) lines.push(`-F ${c}`);
  for (const c of chains) lines.push(`-X ${c}`);
  if (lines.length === 0) return undefined;
  return `*nat\n${lines.join("\n")}\nCOMMIT\n`;
}

/**
 * Reads the table, plans, applies. The batch is atomic but planned from a snapshot: when a rule
 * changed in between (the batch fails), read again; a few rounds settle any race with plugins.
 */
async function removeTargets(pick: (table: NatTable) => Set<string>): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const table = await readNatTable();
    const targets = pick(table);
    const script = removalScript(table, targets);
    if (!script) return [];
    try {
      await runChecked("iptables-restore", ["--noflush", "-w", "5"], { stdin: script });
      return [...targets].filter((t) => table.chains.has(t)).sort();
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

/** Removes one pod's masquerade and hostPort chains (and the rules jumping to them); idempotent. */
export async function removePodNatRules(network: string, containerId: string): Promise<void> {
  const targets = new Set([cniChainName(network, containerId), cniChainName(network, containerId, "DN-")]);
  await removeTargets(() => targets);
}

/** The comment text, as `iptables -S` escapes it, that marks a rule of this network. */
function networkMarker(network: string): string {
  return `name: \\"${network}\\" id: \\"`;
}

/**
 * Removes every per-pod NAT chain of a network (all pods), found by the plugins' rule comments.
 * The shared CNI-HOSTPORT-* chains stay: other networks on the host may use them.
 * Returns the chains removed.
 */
export async function removeNetworkNatRules(network: string): Promise<string[]> {
  const marker = networkMarker(network);
  return removeTargets((table) => {
    const targets = new Set<string>();
    for (const rule of table.rules) {
      const target = jumpTarget(rule);
      if (rule.includes(marker) && target?.startsWith("CNI-") && !target.startsWith("CNI-HOSTPORT-")) targets.add(target);
    }
    return targets;
  });
}
