// The node's masquerade rule for pod traffic, replacing the CNI bridge plugin's ipMasq.
//
// bridge's ipMasq masquerades everything a pod sends outside its own node's pod CIDR, so a pod on
// node B would see every pod of node A as node A's address. This rule leaves traffic to the
// whole cluster CIDR (every node's pods) alone and masquerades the rest (the host, other
// machines, the internet) to the node's address:
//
//   POSTROUTING -s <pod CIDR> -m comment "skiff-masq: <network>" -j SKIFF-MASQ-<hash>
//   SKIFF-MASQ-<hash>:  -d <pod CIDR> RETURN · -d <cluster CIDR> RETURN · -d 224.0.0.0/4 RETURN
//                       · MASQUERADE
//
// iptables (nf_tables backend), like the CNI plugins, so iptables.ts removes it like theirs. The
// chain is rewritten atomically (`iptables-restore --noflush`, declaring a chain flushes it) and
// the jump added only when missing: ensureMasquerade is idempotent and repairs a changed rule.

import { createHash } from "node:crypto";
import { runChecked } from "./exec.ts";
import { readNatTable, removalScript, type NatTable } from "./iptables.ts";

export interface MasqueradeOptions {
  /** The CNI network name: names the chain and the comment. */
  network: string;
  podCidr: string;
  clusterCidr: string;
}

/** SKIFF-MASQ- + 16 hex characters of sha256(network): within iptables' 28 characters. */
export function masqueradeChain(network: string): string {
  return `SKIFF-MASQ-${createHash("sha256").update(network).digest("hex").slice(0, 16)}`;
}

export function masqueradeComment(network: string): string {
  return `skiff-masq: ${network}`;
}

function jumpRule(o: MasqueradeOptions): string {
  return `-A POSTROUTING -s ${o.podCidr} -m comment --comment "${masqueradeComment(o.network)}" -j ${masqueradeChain(o.network)}`;
}

/** The POSTROUTING rules jumping to the network's chain, as `iptables -S` prints them. */
function jumps(table: NatTable, chain: string): string[] {
  return table.rules.filter((r) => r.startsWith("-A POSTROUTING ") && r.endsWith(` -j ${chain}`));
}

/**
 * The restore script that makes the rules as wanted, given the current table; undefined when
 * they already are (the periodic repair then writes nothing).
 */
export function masqueradeScript(table: NatTable, o: MasqueradeOptions): string | undefined {
  const chain = masqueradeChain(o.network);
  const rules = [
    `-A ${chain} -d ${o.podCidr} -j RETURN`,
    `-A ${chain} -d ${o.clusterCidr} -j RETURN`,
    `-A ${chain} -d 224.0.0.0/4 -j RETURN`,
    `-A ${chain} -j MASQUERADE`,
  ];
  const existing = jumps(table, chain);
  // A jump for another pod CIDR (the flag changed) goes; the right one is kept, not duplicated.
  const right = existing.find((r) => r.startsWith(`-A POSTROUTING -s ${o.podCidr} `));
  const current = table.rules.filter((r) => r.startsWith(`-A ${chain} `));
  if (right && existing.length === 1 && current.join("\n") === rules.join("\n")) return undefined;
  const lines = [`:${chain} - [0:0]`, ...rules];
  for (const r of existing) if (r !== right) lines.push(`-D ${r.slice(3)}`);
  if (!right) lines.push(jumpRule(o));
  return `*nat\n${lines.join("\n")}\nCOMMIT\n`;
}

/** Installs or repairs the network's masquerade rule. */
export function ensureMasquerade(o: MasqueradeOptions): Promise<void> {
  return applyPlanned((nat) => masqueradeScript(nat, o));
}

/** Removes the network's masquerade chain and the jump to it; idempotent. */
export function removeMasquerade(network: string): Promise<void> {
  return applyPlanned((nat) => removalScript(nat, new Set([masqueradeChain(network)])));
}

/** Reads the NAT table, plans a batch from it and applies it; a batch that no longer fits (a rule
 * it deletes went away in between) is planned again, up to three times. */
async function applyPlanned(plan: (nat: NatTable) => string | undefined): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const script = plan(await readNatTable());
    if (!script) return;
    try {
      await runChecked("iptables-restore", ["--noflush", "-w", "5"], { stdin: script });
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

/** Whether the network's masquerade chain exists (tests, leftovers). */
export function hasMasquerade(table: NatTable, network: string): boolean {
  return table.chains.has(masqueradeChain(network));
}
