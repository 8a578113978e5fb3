// OCI image pieces the runtime reads: the image config (process defaults, rootfs diff_ids) and
// the chain IDs that name unpacked snapshots.

import { createHash } from "node:crypto";
import type { ImageConfig } from "./spec.ts";

export interface ImageConfigFile {
  /** Process defaults: entrypoint, cmd, env, workingDir, user. */
  config: ImageConfig;
  /** Digests of the uncompressed layers, bottom first. */
  diffIds: string[];
  /** The signal the image asks to be stopped with (e.g. "SIGQUIT"), if any. */
  stopSignal?: string;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfigFile {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new Error(`${what}: image config is not valid JSON`);
  }
  const c = (json.config ?? {}) as Record<string, unknown>;
  const rootfs = (json.rootfs ?? {}) as Record<string, unknown>;
  const out: ImageConfigFile = {
    config: {
      entrypoint: strings(c.Entrypoint),
      cmd: strings(c.Cmd),
      env: strings(c.Env),
      workingDir: typeof c.WorkingDir === "string" ? c.WorkingDir : "",
      user: typeof c.User === "string" ? c.User : "",
    },
    diffIds: strings(rootfs.diff_ids),
  };
  if (typeof c.StopSignal === "string" && c.StopSignal) out.stopSignal = c.StopSignal;
  return out;
}

/** chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n]). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diff of diffIds) {
    const prev = out.at(-1);
    out.push(prev === undefined ? diff : `sha256:${createHash("sha256").update(`${prev} ${diff}`).digest("hex")}`);
  }
  return out;
}
