// imagePullSecrets: registry credentials for a pod's pulls, read from the Secrets its spec names
// (in the pod's namespace) with one Get per pull — pulls are rare and behind back-offs, and a Get
// always sees a fixed secret, where a cluster-wide Secret informer would keep every Secret of the
// cluster in every agent's memory.
//
//   pod.spec.imagePullSecrets [regcred, …] ─► Get secret ─► .dockerconfigjson {"auths":{KEY:{…}}}
//                                                          or .dockercfg {KEY:{…}}
//   KEY ("https://host:5000", "host:5000/team", "*.example.com", "https://index.docker.io/v1/")
//     matched against the image's registry host[:port] and repository path ─► credentials,
//     most specific key first; the pull tries them in turn (none: anonymous)
//
// A missing secret is a warning and the pull goes on without it, as the kubelet does; a secret
// whose content does not parse fails the pull with a message naming it.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Secret } from "../../gen/skiff/v1alpha1/config_pb.js";
import type { Pod } from "../../gen/skiff/v1alpha1/pod_pb.js";
import type { ResourceClient } from "../client/resource-client.ts";
import type { Logger } from "../log/log.ts";
import { parseReference } from "../runtime/registry/reference.ts";
import type { RegistryAuth } from "../runtime/runtime.ts";

export const DOCKER_CONFIG_JSON = { type: "kubernetes.io/dockerconfigjson", key: ".dockerconfigjson" } as const;
export const DOCKER_CFG = { type: "kubernetes.io/dockercfg", key: ".dockercfg" } as const;

/** One entry of a docker config: the key as written, and what it matches. */
export interface KeyringEntry {
  key: string;
  /** Lower-case host without port; may hold "*" components. */
  host: string;
  /** "" when the key names no port. */
  port: string;
  /** Repository path prefix ("" for the whole registry). */
  path: string;
  auth: RegistryAuth;
}

/** Docker Hub goes by several names; keys and images are compared under this one. */
const DOCKER_HUB = "docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

function splitHostPort(hostPort: string): { host: string; port: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostPort);
  if (!m) return { host: hostPort.toLowerCase(), port: "" };
  return { host: m[1].toLowerCase(), port: m[2] ?? "" };
}

/** Parses a docker config key: scheme and trailing slashes dropped, Docker Hub's names unified. */
export function parseKey(key: string): { host: string; port: string; path: string } {
  const bare = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").replace(/\/+$/, "");
  const slash = bare.indexOf("/");
  const hostPort = slash === -1 ? bare : bare.slice(0, slash);
  let path = slash === -1 ? "" : bare.slice(slash + 1);
  const { port } = splitHostPort(hostPort);
  let { host } = splitHostPort(hostPort);
  if (DOCKER_HUB_ALIASES.has(host) && port === "") {
    host = DOCKER_HUB;
    if (path === "v1" || path === "v2") path = ""; // "https://index.docker.io/v1/" is the whole Hub
  }
  return { host, port, path };
}

function decodeAuth(field: string, where: string): RegistryAuth {
  const text = Buffer.from(field, "base64").toString("utf8");
  const colon = text.indexOf(":");
  if (colon === -1) throw new Error(`${where}: "auth" is not base64 of "username:password"`);
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The entries of an "auths" map (dockerconfigjson) or a whole dockercfg. */
export function parseAuths(auths: unknown, where: string): KeyringEntry[] {
  if (!auths || typeof auths !== "object" || Array.isArray(auths)) throw new Error(`${where}: expected an object of registries`);
  const out: KeyringEntry[] = [];
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    if (!value || typeof value !== "object") throw new Error(`${where}: registry "${key}": expected an object`);
    const v = value as Record<string, unknown>;
    let auth: RegistryAuth;
    if (typeof v.auth === "string" && v.auth !== "") auth = decodeAuth(v.auth, `${where}: registry "${key}"`);
    else if (typeof v.username === "string" || typeof v.password === "string") {
      auth = { username: typeof v.username === "string" ? v.username : "", password: typeof v.password === "string" ? v.password : "" };
    } else continue; // e.g. only an email: nothing to authenticate with
    out.push({ key, ...parseKey(key), auth });
  }
  return out;
}

/**
 * The registry entries of a pull secret. Throws for content that does not parse; returns
 * undefined for a secret of another type (the kubelet ignores those too).
 */
export function parseDockerSecret(secret: Secret): KeyringEntry[] | undefined {
  const name = `secret "${secret.metadata?.name ?? ""}"`;
  for (const kind of [DOCKER_CONFIG_JSON, DOCKER_CFG]) {
    if (secret.type !== kind.type) continue;
    const bytes = secret.data[kind.key];
    if (!bytes || bytes.length === 0) throw new Error(`${name} of type ${kind.type} has no ${kind.key} key`);
    let doc: unknown;
    try {
      doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
    } catch (err) {
      throw new Error(`${name}: ${kind.key} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    if (kind === DOCKER_CFG) return parseAuths(doc, `${name}: ${kind.key}`);
    const auths = (doc as { auths?: unknown } | null)?.auths;
    if (auths === undefined) return [];
    return parseAuths(auths, `${name}: ${kind.key}: "auths"`);
  }
  return undefined;
}

function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.split(".");
  const h = host.split(".");
  if (p.length !== h.length) return false;
  return p.every((part, i) => part === h[i] || (part.includes("*") && new RegExp(`^${part.split("*").map(escapeRe).join("[^.]*")}$`).test(h[i])));
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether a docker config key applies to this image (host, port and path prefix, like the kubelet). */
export function keyMatches(entry: Pick<KeyringEntry, "host" | "port" | "path">, image: string): boolean {
  let ref;
  try {
    ref = parseReference(image);
  } catch {
    return false; // the pull itself reports the bad reference
  }
  const { host, port } = splitHostPort(ref.domain);
  if (entry.port !== port || !hostMatches(entry.host, host)) return false;
  if (entry.path === "") return true;
  return ref.path === entry.path || ref.path.startsWith(`${entry.path}/`);
}

/** Credentials for an image, most specific key first (longer key = more specific, as the kubelet sorts). */
export function credentialsFor(entries: KeyringEntry[], image: string): RegistryAuth[] {
  const specificity = (e: KeyringEntry) => `${e.host}:${e.port}/${e.path}`.length - (e.host.includes("*") ? 1000 : 0);
  return entries
    .filter((e) => keyMatches(e, image))
    .sort((a, b) => specificity(b) - specificity(a))
    .map((e) => e.auth);
}

export interface PullSecrets {
  /**
   * The credentials to try for an image of this pod, in order; [] pulls anonymously. Throws when
   * a named secret exists but cannot be read as docker config.
   */
  credentials(pod: Pod, image: string): Promise<RegistryAuth[]>;
}

export function createPullSecrets(opts: { client: ResourceClient<Secret>; log: Logger }): PullSecrets {
  const { client, log } = opts;
  return {
    async credentials(pod, image) {
      const names = (pod.spec?.imagePullSecrets ?? []).map((r) => r.name).filter((n) => n !== "");
      if (names.length === 0) return [];
      const m = pod.metadata!;
      const entries: KeyringEntry[] = [];
      for (const name of [...new Set(names)]) {
        let secret: Secret;
        try {
          secret = await client.get(m.namespace, name);
        } catch (err) {
          const e = ConnectError.from(err);
          const why = e.code === Code.NotFound ? `secret "${name}" not found in namespace "${m.namespace}"` : `could not read secret "${name}": ${e.rawMessage}`;
          log.warn({ pod: `${m.namespace}/${m.name}`, image }, `unable to retrieve image pull secret: ${why}; pulling without it`);
          continue;
        }
        const parsed = parseDockerSecret(secret);
        if (parsed === undefined) {
          log.warn({ pod: `${m.namespace}/${m.name}`, secret: name, type: secret.type }, `image pull secret "${name}" is not of type ${DOCKER_CONFIG_JSON.type} or ${DOCKER_CFG.type}; ignored`);
          continue;
        }
        entries.push(...parsed);
      }
      return credentialsFor(entries, image);
    },
  };
}
