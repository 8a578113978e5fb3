// A real OCI/Docker v2 registry for pull tests: Debian's `docker-registry` (distribution 2.8)
// on a free loopback port, a temp storage dir and a generated config; optionally with htpasswd
// Basic auth (bcrypt hashes from bcryptjs, as `htpasswd -B` would write them). stop() kills it
// and removes the dir. pushOciLayout() puts an OCI image layout into it with `skopeo copy`.
//
// Like etcd (etcd.ts), the registry runs under startGuardedProcess (process.ts), so a test run
// that dies cannot leave one behind.

import bcrypt from "bcryptjs";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, LOOPBACK } from "./ports.ts";
import { retryOnAddressInUse, startGuardedProcess } from "./process.ts";
import { makeTempDir, removeTempDir } from "./tmp.ts";

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface StartRegistryOptions {
  /** Require these credentials (htpasswd Basic auth) for every request. */
  basicAuth?: RegistryCredentials;
  /** Registry binary; default `docker-registry` from PATH (or $SKIFF_REGISTRY_BIN). */
  bin?: string;
  /** How long to wait until it answers /v2/. Default 30s. */
  timeoutMs?: number;
}

export interface RegistryServer {
  /** e.g. "127.0.0.1:40123": what image references start with. */
  host: string;
  /** e.g. "http://127.0.0.1:40123" */
  url: string;
  /** The temp dir: config.json, htpasswd, data/. */
  dir: string;
  /** The registry's recent log lines (warnings and errors). */
  log(): string;
  /** Kills the registry and removes its dir. Safe to call twice. */
  stop(): Promise<void>;
}

/** The registry's config. YAML is a superset of JSON, so JSON is a valid config.yml. */
function registryConfig(dir: string, port: number, htpasswd: string | undefined): unknown {
  return {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true }, formatter: "text" },
    storage: {
      filesystem: { rootdirectory: join(dir, "data") },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr: `${LOOPBACK}:${port}`, secret: randomBytes(16).toString("hex") },
    health: { storagedriver: { enabled: false } },
    ...(htpasswd ? { auth: { htpasswd: { realm: "skiff-test-registry", path: htpasswd } } } : {}),
  };
}

async function startOnce(bin: string, opts: StartRegistryOptions): Promise<RegistryServer> {
  const port = await freePort();
  const dir = makeTempDir("skiff-registry-");
  let htpasswd: string | undefined;
  if (opts.basicAuth) {
    htpasswd = join(dir, "htpasswd");
    // distribution's htpasswd auth accepts bcrypt only ($2a$/$2b$/$2y$).
    writeFileSync(htpasswd, `${opts.basicAuth.username}:${bcrypt.hashSync(opts.basicAuth.password, 10)}\n`);
  }
  const configPath = join(dir, "config.yml");
  writeFileSync(configPath, JSON.stringify(registryConfig(dir, port, htpasswd), null, 2));

  // REGISTRY_* variables override the config file: keep the caller's out.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
  const host = `${LOOPBACK}:${port}`;
  const url = `http://${host}`;
  const { stop, log } = await startGuardedProcess({
    command: bin,
    args: ["serve", configPath],
    env,
    name: "docker-registry",
    timeoutMs: opts.timeoutMs ?? 30_000,
    exitedBefore: "answering",
    notReady: `at ${url} not ready`,
    ready: async () => {
      // 200 when open, 401 with auth: either way it serves the v2 API.
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      return res.status === 200 || res.status === 401;
    },
    cleanup: () => removeTempDir(dir),
  });
  return { host, url, dir, log, stop };
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RegistryServer> {
  const bin = opts.bin ?? process.env.SKIFF_REGISTRY_BIN ?? "docker-registry";
  return retryOnAddressInUse(() => startOnce(bin, opts));
}

export interface PushOptions {
  /** The image in the layout to push (its org.opencontainers.image.ref.name); default its only one. */
  sourceTag?: string;
  /** Push every platform of an index (skopeo --all). Default true; false pushes only linux/amd64's. */
  all?: boolean;
  /** Convert to Docker media types ("v2s2") instead of keeping OCI ones. */
  format?: "oci" | "v2s2";
}

/**
 * Pushes an OCI image layout to `registry` ("http://host:port" or "host:port") as `repoTag`
 * ("team/app:v1") with skopeo; returns the digest of the pushed manifest (or index).
 */
export async function pushOciLayout(
  layoutDir: string,
  registry: string,
  repoTag: string,
  auth?: RegistryCredentials,
  opts: PushOptions = {},
): Promise<{ digest: string }> {
  const host = registry.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
  const tmp = makeTempDir("skiff-skopeo-");
  try {
    const digestFile = join(tmp, "digest");
    const args = [
      "--insecure-policy", // no /etc/containers/policy.json needed
      "copy",
      "--quiet",
      "--dest-tls-verify=false", // loopback registries speak plain HTTP
      `--digestfile=${digestFile}`,
      ...(auth ? [`--dest-creds=${auth.username}:${auth.password}`] : ["--dest-no-creds"]),
      ...(opts.all === false ? [] : ["--all"]),
      ...(opts.format ? [`--format=${opts.format}`] : []),
      `oci:${layoutDir}${opts.sourceTag ? `:${opts.sourceTag}` : ""}`,
      `docker://${host}/${repoTag}`,
    ];
    await new Promise<void>((resolve, reject) => {
      execFile("skopeo", args, { timeout: 120_000, maxBuffer: 4 * 1024 * 1024 }, (err, _stdout, stderr) => {
        if (err) reject(new Error(`skopeo copy to ${host}/${repoTag} failed: ${stderr.trim() || err.message}`));
        else resolve();
      });
    });
    return { digest: readFileSync(digestFile, "utf8").trim() };
  } finally {
    removeTempDir(tmp);
  }
}
