// Names for one network test run, and removal of what a run made: netns, bridge, NAT chains, and
// the service proxy's nftables table (tests name it after the run).
//
// Every name starts with "sk-t" + the owning process id (base 36) + 2 random characters, so
// concurrent runs never share a name and a later run can tell a crashed run's leftovers (owner
// gone) from a live run's. The CNI network and its bridge share one name (≤ 15 characters).

import { randomInt } from "node:crypto";
import { runChecked } from "../../internal/network/exec.ts";
import { readNatTable, removalScript, removeNetworkNatRules } from "../../internal/network/iptables.ts";
import { deleteNetns, listNetns } from "../../internal/network/netns.ts";
import { deleteTable, listTables } from "../../internal/network/proxy/kernel.ts";

const PREFIX = "sk-t";
const TAG = /^sk-t([0-9a-z]+)[0-9a-z]{2}(?:-|$)/;

export function runName(): string {
  const rand = randomInt(36 * 36).toString(36).padStart(2, "0");
  return `${PREFIX}${process.pid.toString(36)}${rand}`;
}

function ownerAlive(name: string): boolean {
  const m = TAG.exec(name);
  if (!m) return true; // not ours: never touch
  const pid = parseInt(m[1], 36);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function bridges(): Promise<string[]> {
  const r = await runChecked("ip", ["-j", "link", "show", "type", "bridge"]);
  return (JSON.parse(r.stdout || "[]") as { ifname: string }[]).map((l) => l.ifname);
}

/** Networks named in NAT rule comments (`name: "<net>" id: …`). */
async function natNetworks(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const rule of (await readNatTable()).rules) {
    for (const m of rule.matchAll(/name: \\"([^\\"]+)\\" id: /g)) out.add(m[1]);
  }
  return out;
}

/** Removes everything of run `name` (its netns `name-*`, its bridge, its NAT chains, its nft table). Idempotent. */
export async function removeRun(name: string): Promise<void> {
  for (const ns of listNetns()) if (ns === name || ns.startsWith(`${name}-`)) await deleteNetns(ns);
  if ((await bridges()).includes(name)) await runChecked("ip", ["link", "delete", name, "type", "bridge"]);
  await removeNetworkNatRules(name);
  if ((await listTables()).includes(name)) await deleteTable(name);
}

/** Removes what runs whose process is gone left behind. */
export async function sweepCrashedRuns(): Promise<string[]> {
  const names = new Set<string>();
  const add = (n: string) => {
    const m = TAG.exec(n);
    if (m && !ownerAlive(n)) names.add(n.slice(0, m[0].replace(/-$/, "").length));
  };
  for (const ns of listNetns()) add(ns);
  for (const b of await bridges()) add(b);
  for (const n of await natNetworks()) add(n);
  for (const t of await listTables()) add(t);
  for (const n of names) await removeRun(n);
  return [...names];
}

const SHARED = ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"];

/**
 * portmap's shared chains (and the PREROUTING/OUTPUT/POSTROUTING jumps to them) stay after the
 * last DEL. Removes them when no pod on the host uses portmap any more (CNI-HOSTPORT-DNAT empty).
 */
export async function removeUnusedPortmapChains(): Promise<void> {
  const table = await readNatTable();
  if (!table.chains.has("CNI-HOSTPORT-DNAT")) return;
  if (table.rules.some((r) => r.startsWith("-A CNI-HOSTPORT-DNAT "))) return;
  const script = removalScript(table, new Set(SHARED));
  if (script) await runChecked("iptables-restore", ["--noflush", "-w", "5"], { stdin: script });
}

/** Everything of run `name` still present (empty when clean). */
export async function findRun(name: string): Promise<string[]> {
  const found: string[] = [];
  for (const ns of listNetns()) if (ns === name || ns.startsWith(`${name}-`)) found.push(`netns ${ns}`);
  if ((await bridges()).includes(name)) found.push(`bridge ${name}`);
  if ((await natNetworks()).has(name)) found.push(`nat rules of ${name}`);
  if ((await listTables()).includes(name)) found.push(`nft table ${name}`);
  return found;
}

/** A /24 in 10.231.0.0/16 that no route on the host touches. */
export async function freePodCidr(): Promise<string> {
  const routes = (await runChecked("ip", ["-4", "route", "show", "table", "all"])).stdout;
  for (let i = 0; i < 50; i++) {
    const third = randomInt(256);
    if (!routes.includes(`10.231.${third}.`)) return `10.231.${third}.0/24`;
  }
  throw new Error("no free /24 in 10.231.0.0/16");
}
