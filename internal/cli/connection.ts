// Where to connect and as whom, from flags, the environment and the config file (kubectl's
// order: a flag beats the context, the context beats the defaults). Shared by skiffctl and the
// component commands (`skiff scheduler|controller-manager|agent --kubeconfig …`).
import { readFile } from "node:fs/promises";
import type { ApiCredentials } from "../client/credentials.ts";
import { checkServerUrl, configPath, configRelative, currentEntries, DEFAULT_SERVER, loadConfig, saveConfig, type Env } from "./config.ts";
import { CliError } from "./errors.ts";

/** The flags every command takes (kubectl's names). */
export interface ConnectionFlags {
  server?: string;
  context?: string;
  token?: string;
  as?: string;
  "as-group"?: string;
  "certificate-authority"?: string;
  "client-certificate"?: string;
  "client-key"?: string;
  /** A config file other than $SKIFF_CONFIG / ~/.skiff/config.yaml. */
  kubeconfig?: string;
}

export interface Connection {
  /** The first server (for messages). */
  server: string;
  /**
   * Every server given: `--server` and the config's `server` may list several, comma-separated
   * (calls move to the next when one is down), then the cluster entry's `known-servers`.
   */
  servers: string[];
  credentials: ApiCredentials;
  /** The CA file the server's certificate is checked against (for error messages). */
  caFile: string;
  /**
   * Set when the servers come from the config file's cluster entry (no --server, no
   * $SKIFF_SERVER): keeps every apiserver the cluster lists there (`known-servers`), for the next
   * command when the configured one is down. `servers` already holds the kept ones.
   */
  rememberServers?: (listed: string[]) => Promise<void>;
}

/** Bounded: a hand-edited or damaged config cannot make a command try servers without end. */
const MAX_KNOWN_SERVERS = 16;

export async function resolveConnection(flags: ConnectionFlags, env: Env = process.env): Promise<Connection> {
  const path = flags.kubeconfig || configPath(env);
  const cfg = await loadConfig(path);
  const { cluster, user } = currentEntries(cfg, flags.context, path);
  const fromConfig = (f: string | undefined) => (f ? configRelative(path, f) : undefined);
  const given = flags.server || env.SKIFF_SERVER || cluster?.cluster.server || cfg.server || DEFAULT_SERVER;
  const servers = given.split(",").map((s) => s.trim()).filter(Boolean).map(checkServerUrl);
  if (servers.length === 0) throw new CliError(`no server URL in "${given}"`);
  for (const s of servers) if (!s.startsWith("https://")) throw new CliError(`the apiserver only speaks TLS: use https:// in ${s}`);
  const server = servers[0];
  let rememberServers: Connection["rememberServers"];
  const entry = cluster?.cluster;
  if (!flags.server && !env.SKIFF_SERVER && entry?.server) {
    const configured = servers.map((u) => new URL(u).origin);
    const known = (entry["known-servers"] ?? "").split(",").map((s) => s.trim()).filter((s) => /^https:\/\/\S+$/.test(s)).slice(0, MAX_KNOWN_SERVERS);
    for (const k of known) if (!servers.includes(k)) servers.push(k);
    rememberServers = async (listed) => {
      const keep = [...new Set(listed)].filter((u) => !configured.includes(u)).slice(0, MAX_KNOWN_SERVERS).join(",");
      if (listed.length === 0 || keep === (entry["known-servers"] ?? "")) return;
      // Read again just before writing: only this cluster's entry changes.
      const now = await loadConfig(path);
      const at = now.clusters?.find((c) => c.name === cluster!.name);
      if (!at || at.cluster.server !== entry.server) return;
      if (keep) at.cluster["known-servers"] = keep;
      else delete at.cluster["known-servers"];
      await saveConfig(path, now);
    };
  }
  const caFile = flags["certificate-authority"] || fromConfig(cluster?.cluster["certificate-authority"]);
  if (!caFile) {
    throw new CliError(`no CA to check ${server}'s certificate against: pass --certificate-authority FILE or set a context (skiffctl config set-cluster NAME --server URL --certificate-authority FILE)`);
  }
  const certFile = flags["client-certificate"] || (flags.token ? undefined : fromConfig(user?.user["client-certificate"]));
  const keyFile = flags["client-key"] || (flags.token ? undefined : fromConfig(user?.user["client-key"]));
  if (Boolean(certFile) !== Boolean(keyFile)) throw new CliError("a client certificate needs its key and a key its certificate: pass both --client-certificate and --client-key");
  const credentials: ApiCredentials = { ca: await readPem(caFile, "CA") };
  if (certFile && keyFile) {
    credentials.cert = await readPem(certFile, "client certificate");
    credentials.key = await readPem(keyFile, "client key");
  }
  const token = flags.token || (flags["client-certificate"] ? undefined : user?.user.token);
  if (token) credentials.token = token;
  if (flags.as) credentials.impersonateUser = flags.as;
  if (flags["as-group"]) credentials.impersonateGroups = flags["as-group"].split(",").map((g) => g.trim()).filter(Boolean);
  return { server, servers, credentials, caFile, rememberServers };
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
