// The result of every successful ADD, kept on disk so DEL and CHECK can hand the plugins their
// prevResult and runtimeConfig after an agent restart — as libcni does. Same file layout and
// format as libcni (<dir>/<network>-<containerId>-<ifName>, kind "cniCacheV1"), so tools that
// read libcni's cache read ours.

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CacheEntry {
  kind: "cniCacheV1";
  containerId: string;
  /** The network configuration list, base64 (a Go []byte in libcni). */
  config: string;
  ifName: string;
  networkName: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

export interface ResultCache {
  readonly dir: string;
  read(networkName: string, containerId: string, ifName: string): CacheEntry | undefined;
  write(entry: CacheEntry): void;
  remove(networkName: string, containerId: string, ifName: string): void;
  /** Every entry of this network. */
  list(networkName: string): CacheEntry[];
}

export function createResultCache(dir: string): ResultCache {
  const file = (net: string, id: string, ifName: string) => join(dir, `${net}-${id}-${ifName}`);

  function load(path: string): CacheEntry | undefined {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      const entry = JSON.parse(text) as CacheEntry;
      return entry && entry.kind === "cniCacheV1" ? entry : undefined;
    } catch {
      return undefined; // torn or foreign file: as good as none
    }
  }

  return {
    dir,
    read(net, id, ifName) {
      const entry = load(file(net, id, ifName));
      return entry && entry.networkName === net && entry.containerId === id && entry.ifName === ifName ? entry : undefined;
    },
    write(entry) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const path = file(entry.networkName, entry.containerId, entry.ifName);
      const tmp = `${path}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
      renameSync(tmp, path);
    },
    remove(net, id, ifName) {
      rmSync(file(net, id, ifName), { force: true });
    },
    list(net) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw err;
      }
      const out: CacheEntry[] = [];
      for (const name of names) {
        if (!name.startsWith(`${net}-`) || name.includes(".tmp-")) continue;
        const entry = load(join(dir, name));
        if (entry && entry.networkName === net) out.push(entry);
      }
      return out;
    },
  };
}
