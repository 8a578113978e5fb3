// skiffctl's config file, in kubeconfig's shape: clusters (server + the CA that signed its
// certificate), users (client certificate + key, or a token), contexts pairing them, and the
// current context. Read from $SKIFF_CONFIG or ~/.skiff/config.yaml; `skiff up` writes an admin
// context; `skiffctl config set-cluster|set-credentials|set-context|use-context` edit it.
//
//   clusters: [{ name: local, cluster: { server: https://127.0.0.1:6443, certificate-authority: pki/ca.crt } }]
//   users: [{ name: admin, user: { client-certificate: pki/admin.crt, client-key: pki/admin.key } }]
//   contexts: [{ name: admin@local, context: { cluster: local, user: admin } }]
//   current-context: admin@local
//
// Relative file names are relative to the config file. A bare `server: URL` (the older form) is
// still read, as the server when no context names one.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import YAML from "yaml";
import { CliError } from "./errors.ts";

export const DEFAULT_SERVER = "https://127.0.0.1:6443";

export interface ClusterEntry {
  name: string;
  cluster: {
    server?: string;
    "certificate-authority"?: string;
    /**
     * The cluster's other apiservers, comma-separated, as its `kubernetes` Endpoints listed them
     * when skiffctl last asked (skiffctl keeps it: it moves to them when `server` is down).
     */
    "known-servers"?: string;
  };
}
export interface UserEntry {
  name: string;
  user: { "client-certificate"?: string; "client-key"?: string; token?: string };
}
export interface ContextEntry {
  name: string;
  context: { cluster?: string; user?: string };
}

export interface CliConfig {
  clusters?: ClusterEntry[];
  users?: UserEntry[];
  contexts?: ContextEntry[];
  "current-context"?: string;
  /** The older form: just a server URL. */
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
  if (typeof value !== "object" || Array.isArray(value)) throw new CliError(`config file ${path}: expected a mapping with clusters, users, contexts and current-context`);
  const v = value as Record<string, unknown>;
  const bad = (what: string) => new CliError(`config file ${path}: ${what}`);
  if (v.server !== undefined && typeof v.server !== "string") throw bad("server must be a string");
  if (v["current-context"] !== undefined && typeof v["current-context"] !== "string") throw bad("current-context must be a string");
  const cfg: CliConfig = {};
  for (const [list, inner] of [["clusters", "cluster"], ["users", "user"], ["contexts", "context"]] as const) {
    const items = v[list];
    if (items === undefined || items === null) continue;
    if (!Array.isArray(items)) throw bad(`${list} must be a list of {name, ${inner}}`);
    items.forEach((it, i) => {
      const e = it as Record<string, unknown> | null;
      if (!e || typeof e.name !== "string" || typeof e[inner] !== "object" || e[inner] === null) throw bad(`${list}[${i}] must have a name and a ${inner} mapping`);
      for (const [k, x] of Object.entries(e[inner] as object)) if (typeof x !== "string") throw bad(`${list}[${i}].${inner}.${k} must be a string`);
    });
    (cfg as Record<string, unknown>)[list] = items;
  }
  if (v["current-context"] !== undefined) cfg["current-context"] = v["current-context"] as string;
  if (v.server !== undefined) cfg.server = v.server as string;
  return cfg;
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
  const server = currentEntries(cfg).cluster?.cluster.server ?? cfg.server;
  if (server) return { server: checkServerUrl(server), source: "config" };
  return { server: DEFAULT_SERVER, source: "default" };
}

/** The current (or named) context and the cluster and user it names. */
export function currentEntries(cfg: CliConfig, contextName?: string, path = "the config file"): { context?: ContextEntry; cluster?: ClusterEntry; user?: UserEntry } {
  const name = contextName || cfg["current-context"];
  if (!name) return {};
  const context = cfg.contexts?.find((c) => c.name === name);
  if (!context) {
    if (contextName) throw new CliError(`no context "${contextName}" in ${path}; contexts: ${(cfg.contexts ?? []).map((c) => c.name).join(", ") || "none"}`);
    return {};
  }
  return {
    context,
    cluster: cfg.clusters?.find((c) => c.name === context.context.cluster),
    user: cfg.users?.find((u) => u.name === context.context.user),
  };
}

/** A file name from the config file, made absolute against the file's directory. */
export function configRelative(configFile: string, file: string): string {
  return isAbsolute(file) ? file : resolve(dirname(configFile), file);
}

/** Inserts or replaces the entry with the same name. */
export function upsert<T extends { name: string }>(list: T[] | undefined, entry: T): T[] {
  const out = (list ?? []).filter((e) => e.name !== entry.name);
  out.push(entry);
  return out;
}
