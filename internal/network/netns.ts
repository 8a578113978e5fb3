// Named network namespaces, as `ip netns` keeps them: a bind mount of the namespace at
// /var/run/netns/<name>, so it outlives every process in it (a pod's netns must survive its
// containers' restarts). Create and delete are idempotent.

import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { runChecked } from "./exec.ts";

/** Where `ip netns` keeps its mounts (iproute2's NETNS_RUN_DIR). */
export const NETNS_DIR = "/var/run/netns";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function checkName(name: string): void {
  if (!NAME.test(name)) {
    throw new Error(`invalid network namespace name ${JSON.stringify(name)}: use letters, digits, "_", "." and "-" (at most 63)`);
  }
}

export function netnsPath(name: string): string {
  checkName(name);
  return join(NETNS_DIR, name);
}

function runDir(): string {
  try {
    return realpathSync(NETNS_DIR);
  } catch {
    return NETNS_DIR;
  }
}

/** Mount points of our mount namespace (field 5 of /proc/self/mountinfo, octal escapes decoded). */
function mountPoints(): Set<string> {
  const out = new Set<string>();
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const field = line.split(" ")[4];
    if (field) out.add(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Names of the namespaces under /var/run/netns that are really mounted. */
export function listNetns(): string[] {
  let names: string[];
  try {
    names = readdirSync(NETNS_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const mounted = mountPoints();
  const dir = runDir();
  return names.filter((n) => mounted.has(join(dir, n))).sort();
}

export function netnsExists(name: string): boolean {
  checkName(name);
  return mountPoints().has(join(runDir(), name));
}

/**
 * Creates the namespace (or keeps an existing one) with its loopback up, and returns its path.
 * A stale file left by an interrupted create (present but not mounted) is replaced.
 */
export async function createNetns(name: string): Promise<string> {
  const path = netnsPath(name);
  if (!netnsExists(name)) {
    try {
      await runChecked("ip", ["netns", "add", name]);
    } catch (err) {
      if (netnsExists(name)) {
        // Someone else made it between our look and our add: fine.
      } else if (/File exists/.test(String(err))) {
        await runChecked("ip", ["netns", "delete", name]).catch(() => undefined);
        await runChecked("ip", ["netns", "add", name]);
      } else {
        throw err;
      }
    }
  }
  // CNI's `loopback` plugin would do the same; one `ip` call is simpler.
  await runChecked("ip", ["-n", name, "link", "set", "lo", "up"]);
  return path;
}

/** Deletes the namespace; a missing one is not an error. Its interfaces (the veth) go with it. */
export async function deleteNetns(name: string): Promise<void> {
  checkName(name);
  try {
    await runChecked("ip", ["netns", "delete", name]);
  } catch (err) {
    if (netnsExists(name)) throw err;
    // Already gone (ip says "No such file or directory"), or a stale unmounted file ip removed.
  }
}
