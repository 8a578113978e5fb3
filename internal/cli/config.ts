// skiffctl's config file: where the apiserver is. Read from $SKIFF_CONFIG or
// ~/.skiff/config.yaml; written by `skiffctl config set-server`.
//
//   server: http://10.0.0.1:6443
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import YAML from "yaml";
import { CliError } from "./errors.ts";

export const DEFAULT_SERVER = "http://127.0.0.1:6443";

export interface CliConfig {
  server?: string;
}

export type Env = Record<string, string | undefined>;

export function configPath(env: Env = process.env): string {
  return env.SKIFF_CONFIG || join(homedir(), ".skiff", "config.yaml");
}

/** The config file's contents; {} when there is none. */
export async function loadConfig(path: string): Promise<CliConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = YAML.parse(text);
  } catch (err) {
    throw new CliError(`config file ${path}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new CliError(`config file ${path}: expected a mapping such as "server: URL"`);
  const server = (value as Record<string, unknown>).server;
  if (server !== undefined && typeof server !== "string") throw new CliError(`config file ${path}: server must be a string`);
  return { server };
}

export async function saveConfig(path: string, config: CliConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, YAML.stringify(config), { mode: 0o600 });
  await rename(tmp, path);
}

/** Checks a server URL and normalises it (no trailing slash). */
export function checkServerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`invalid server URL "${url}": expected e.g. http://127.0.0.1:6443`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new CliError(`invalid server URL "${url}": must start with http:// or https://`);
  return url.replace(/\/+$/, "");
}

export type ServerSource = "flag" | "env" | "config" | "default";

/** The apiserver to talk to: --server, then $SKIFF_SERVER, then the config file, then the default. */
export async function resolveServer(flag: string | undefined, env: Env = process.env): Promise<{ server: string; source: ServerSource }> {
  if (flag) return { server: checkServerUrl(flag), source: "flag" };
  if (env.SKIFF_SERVER) return { server: checkServerUrl(env.SKIFF_SERVER), source: "env" };
  const cfg = await loadConfig(configPath(env));
  if (cfg.server) return { server: checkServerUrl(cfg.server), source: "config" };
  return { server: DEFAULT_SERVER, source: "default" };
}
