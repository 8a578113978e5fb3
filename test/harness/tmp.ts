// Temp dirs for servers that tests start. Each dir records the pid of the test process that
// owns it; a later run removes dirs whose owner is gone, so a crashed run leaves nothing behind
// for long and never collides with the next (every dir name is unique anyway).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const OWNER_FILE = "owner.pid";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes `${prefix}*` dirs in `parent` (the temp dir) whose owning process no longer exists. */
export function sweepStaleTempDirs(prefix: string, parent = tmpdir()): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(parent, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), "utf8"));
    } catch {
      continue; // not ours, or still being set up: leave it
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) removeTempDir(dir);
  }
}

/** A fresh, unique dir owned by this process, in `parent` (the temp dir unless told). */
export function makeTempDir(prefix: string, parent = tmpdir()): string {
  sweepStaleTempDirs(prefix, parent);
  const dir = mkdtempSync(join(parent, prefix));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

/**
 * Detaches every mount under `dir`, deepest first: an agent's pods have tmpfs volumes (secrets,
 * tokens, emptyDir Memory), which rm cannot remove and which would stay mounted.
 */
function unmountUnder(dir: string): void {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return;
  }
  const points = text
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of points) {
    try {
      execFileSync("umount", ["-l", m], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
}

export function removeTempDir(dir: string): void {
  unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
}
