// `skiff agent --runtime containerd …` as a child process (the real entry point, cmd/skiff.ts),
// so that a test can SIGKILL it. It runs under startGuardedProcess (test/harness/process.ts): if
// the test process dies, the agent gets SIGTERM. Its log (pino JSON, on stderr) goes to a file.
//
// The flags of `skiff agent` fix the CNI network's name to "skiff" and its bridge to "skiff0"
// (internal/cmd/agent.ts), so this agent's pods live in netns `skiff-<pod uid>` on bridge skiff0,
// with NAT rules commented `name: "skiff"`. A real Skiff node on the same host would use the same
// names: claimDefaultNetwork() refuses (returns why) when any of them exists and is not a crashed
// run's of this helper (a marker file names the owning pid), and releaseDefaultNetwork() removes
// them afterwards.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, runChecked } from "../../internal/network/exec.ts";
import { readNatTable, removeNetworkNatRules } from "../../internal/network/iptables.ts";
import { hasMasquerade, removeMasquerade } from "../../internal/network/masquerade.ts";
import { deleteNetns, listNetns } from "../../internal/network/netns.ts";
import { testPki } from "../../internal/pki/testing.ts";
import { startGuardedProcess, type GuardedProcess } from "../harness/process.ts";

export const DEFAULT_NETWORK = "skiff";
export const DEFAULT_BRIDGE = "skiff0";
const NETNS = /^skiff-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MARKER = join(tmpdir(), "skiff-agent-e2e-default-network.owner");
const SKIFF = fileURLToPath(new URL("../../cmd/skiff.ts", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** What of the default network exists on this host: bridge, pod netns, NAT rules. */
async function defaultNetworkParts(): Promise<string[]> {
  const found: string[] = [];
  if ((await run("ip", ["link", "show", DEFAULT_BRIDGE])).code === 0) found.push(`bridge ${DEFAULT_BRIDGE}`);
  for (const ns of listNetns()) if (NETNS.test(ns)) found.push(`netns ${ns}`);
  const marker = `name: \\"${DEFAULT_NETWORK}\\" id: \\"`;
  const nat = await readNatTable();
  if (nat.rules.some((r) => r.includes(marker)) || hasMasquerade(nat, DEFAULT_NETWORK)) found.push(`NAT rules of network "${DEFAULT_NETWORK}"`);
  return found;
}

/** Removes the default network's netns, NAT rules and bridge. */
async function removeDefaultNetwork(): Promise<void> {
  for (const ns of listNetns()) if (NETNS.test(ns)) await deleteNetns(ns);
  await removeNetworkNatRules(DEFAULT_NETWORK);
  await removeMasquerade(DEFAULT_NETWORK);
  if ((await run("ip", ["link", "show", DEFAULT_BRIDGE])).code === 0) await runChecked("ip", ["link", "delete", DEFAULT_BRIDGE]);
}

/**
 * Makes the default network (bridge skiff0, netns skiff-*, NAT rules "skiff") this process's to
 * use, after removing a crashed run's leftovers. Returns why not when something else uses it.
 */
export async function claimDefaultNetwork(): Promise<string | undefined> {
  if (existsSync(MARKER)) {
    const owner = Number(readFileSync(MARKER, "utf8"));
    if (owner !== process.pid && Number.isInteger(owner) && owner > 0 && alive(owner)) {
      return `another test process (pid ${owner}) is using Skiff's default network (bridge ${DEFAULT_BRIDGE})`;
    }
    await removeDefaultNetwork();
    rmSync(MARKER, { force: true });
  }
  const found = await defaultNetworkParts();
  if (found.length > 0) {
    return `this host has Skiff's default network already (${found.join(", ")}), perhaps a real Skiff node: not touching it`;
  }
  try {
    writeFileSync(MARKER, String(process.pid), { flag: "wx" });
  } catch {
    return "another test process claimed Skiff's default network just now";
  }
  return undefined;
}

/** Removes what the agents of this process left of the default network. */
export async function releaseDefaultNetwork(): Promise<void> {
  if (!existsSync(MARKER) || Number(readFileSync(MARKER, "utf8")) !== process.pid) return;
  await removeDefaultNetwork();
  rmSync(MARKER, { force: true });
}

export interface CliAgent {
  /** The agent's own pid (node running cmd/skiff.ts). */
  pid: number;
  logPath: string;
  /** The agent's log lines so far, parsed. */
  logLines(): Record<string, unknown>[];
  /** SIGKILL: no clean-up of any kind runs in the agent. Resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (its clean stop), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

/** The parent pid of a process (field 4 of /proc/<pid>/stat, after the parenthesised name). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * Children of `parent` running this Node binary. (Matching the command line alone is not enough:
 * between fork and exec, a child the agent spawns shows the agent's command line too.)
 */
function nodeChildrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || parentOf(Number(name)) !== parent) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0")[0] === process.execPath) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

function parseLog(path: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line being written
    }
  }
  return out;
}

/**
 * The agent port's TLS flags (unless args has them): a serving certificate from the test PKI for
 * the node and its --listen address, written next to the agent's log, and the cluster CA as the
 * client CA. An apiserver started with testPki().kubeletClient (the harness's default) reaches such an agent.
 */
async function tlsFlags(args: string[], dir: string): Promise<string[]> {
  // An agent joining with a token gets its serving certificate from the cluster.
  if (args.some((a) => a.startsWith("--tls-cert-file")) || args.some((a) => a.startsWith("K10"))) return [];
  const listen = args[args.indexOf("--listen") + 1] ?? "";
  const host = args.includes("--listen") ? listen.replace(/:\d+$/, "").replace(/^\[|\]$/g, "") : "";
  const nodeName = args.includes("--node-name") ? args[args.indexOf("--node-name") + 1] : "agent";
  const tls = await (await testPki()).agentServing(nodeName, host ? [host] : []);
  const file = (name: string, text: string) => {
    const path = join(dir, `agent-${process.pid}-${name}`);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  return ["--tls-cert-file", file("tls.crt", tls.cert), "--tls-private-key-file", file("tls.key", tls.key), "--client-ca-file", file("client-ca.crt", tls.clientCa)];
}

/**
 * Starts `skiff agent <args>` (behind `opts.prefix`, a command that execs the rest, e.g. nsenter)
 * and waits until it logs
 * "agent ready": node registered, pods listed, orphans removed, pod workers running.
 */
export async function startCliAgent(args: string[], logPath: string, timeoutMs = 60_000, opts: { prefix?: string[] } = {}): Promise<CliAgent> {
  args = [...args, ...(await tlsFlags(args, dirname(logPath)))];
  const ready = () => parseLog(logPath).some((l) => l.msg === "agent ready");
  let guarded: GuardedProcess;
  try {
    guarded = await startGuardedProcess({
      command: "sh",
      // The agent logs to stderr: into the file, appended.
      args: ["-c", 'exec "$0" "$@" 2>>"$SKIFF_TEST_AGENT_LOG"', ...(opts.prefix ?? []), process.execPath, SKIFF, "agent", ...args],
      env: { ...process.env, SKIFF_TEST_AGENT_LOG: logPath, SKIFF_LOG_FORMAT: "json" },
      name: "skiff agent",
      timeoutMs,
      exitedBefore: "it was ready",
      notReady: "did not log \"agent ready\"",
      ready: async () => ready(),
    });
  } catch (err) {
    const tail = existsSync(logPath) ? readFileSync(logPath, "utf8").split("\n").slice(-20).join("\n") : "";
    throw new Error(`${(err as Error).message}\nits log:\n${tail}`, { cause: err });
  }
  // The guard's wrapper (guarded.child) runs the agent as its child (`sh -c 'exec node …'`).
  const pids = nodeChildrenOf(guarded.child.pid!);
  if (pids.length !== 1) {
    await guarded.stop();
    throw new Error(`expected one agent process under the wrapper ${guarded.child.pid}, found ${JSON.stringify(pids)}`);
  }
  const pid = pids[0];
  return {
    pid,
    logPath,
    logLines: () => parseLog(logPath),
    async kill() {
      process.kill(pid, "SIGKILL");
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (alive(pid)) throw new Error(`agent ${pid} still alive after SIGKILL`);
      await guarded.stop(); // the wrapper has exited with it: just bookkeeping
    },
    stop: () => guarded.stop(),
  };
}
