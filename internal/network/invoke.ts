// One CNI plugin execution, per the CNI spec's protocol: the plugin binary found on CNI_PATH,
// parameters in CNI_* environment variables, the network configuration as JSON on stdin, the
// result as JSON on stdout, and on failure a non-zero exit with an error JSON
// ({code, msg, details}) on stdout.

import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { run, sbinPath } from "./exec.ts";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION";

export interface InvokeRequest {
  command: CniCommand;
  /** Plugin binary name (the config's `type`). */
  plugin: string;
  /** Plugin search path, ":"-separated (CNI_PATH). */
  pluginPath: string;
  containerId: string;
  /** Path of the network namespace; may be "" for DEL. */
  netns: string;
  ifName: string;
  /** CNI_ARGS ("K=V;K2=V2"), if any. */
  args?: string;
  /** The plugin's configuration: what goes to stdin. */
  config: Record<string, unknown>;
  timeoutMs?: number;
}

/** A plugin failed: `msg`/`details`/`code` are the plugin's own error JSON when it sent one. */
export class CniError extends Error {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly containerId: string;
  /** CNI error code (e.g. 7 invalid network config, 11 try again later, 999 generic). */
  readonly code: number | undefined;
  readonly msg: string;
  readonly details: string | undefined;

  constructor(req: Pick<InvokeRequest, "plugin" | "command" | "containerId">, msg: string, code?: number, details?: string) {
    super(`CNI ${req.plugin} ${req.command} for ${req.containerId}: ${msg}${details ? `: ${details}` : ""}${code !== undefined ? ` (code ${code})` : ""}`);
    this.name = "CniError";
    this.plugin = req.plugin;
    this.command = req.command;
    this.containerId = req.containerId;
    this.code = code;
    this.msg = msg;
    this.details = details;
  }
}

/** The first executable `<dir>/<plugin>` on the path, or undefined. */
export function findPlugin(plugin: string, pluginPath: string): string | undefined {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(plugin)) return undefined;
  for (const dir of pluginPath.split(":").filter(Boolean)) {
    const file = join(dir, plugin);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // next dir
    }
  }
  return undefined;
}

/** Runs the plugin; resolves to its parsed stdout (the result for ADD/VERSION, usually undefined otherwise). */
export async function invokePlugin(req: InvokeRequest): Promise<Record<string, unknown> | undefined> {
  const file = findPlugin(req.plugin, req.pluginPath);
  if (!file) throw new CniError(req, `plugin ${JSON.stringify(req.plugin)} not found in ${req.pluginPath}`);

  const env: NodeJS.ProcessEnv = {
    // Plugins shell out to iptables and friends.
    PATH: sbinPath(),
    CNI_COMMAND: req.command,
    CNI_CONTAINERID: req.containerId,
    CNI_NETNS: req.netns,
    CNI_IFNAME: req.ifName,
    CNI_PATH: req.pluginPath,
  };
  if (req.args) env.CNI_ARGS = req.args;

  const timeoutMs = req.timeoutMs ?? 60_000;
  const r = await run(file, [], { stdin: JSON.stringify(req.config), env, timeoutMs });
  const out = r.stdout.trim();
  let parsed: Record<string, unknown> | undefined;
  if (out) {
    try {
      parsed = JSON.parse(out) as Record<string, unknown>;
    } catch {
      parsed = undefined;
    }
  }
  if (r.code !== 0 || r.signal) {
    if (r.timedOut) throw new CniError(req, `timed out after ${timeoutMs} ms`);
    if (parsed && typeof parsed.msg === "string") {
      const code = typeof parsed.code === "number" ? parsed.code : undefined;
      const details = typeof parsed.details === "string" && parsed.details ? parsed.details : undefined;
      throw new CniError(req, parsed.msg, code, details);
    }
    const text = r.stderr.trim() || out || (r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`);
    throw new CniError(req, text);
  }
  if (out && !parsed) throw new CniError(req, `plugin printed a result that is not JSON: ${out.slice(0, 200)}`);
  return parsed;
}
