// Kubernetes' EncryptionConfiguration file (apiserver.config.k8s.io/v1): which resources are
// encrypted at rest, by which providers. Parsing refuses anything it would not act on, with the
// path of the offending field; the file is also generated (`skiff up`) and edited (key rotation).
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import YAML from "yaml";
import type { ProviderConfig } from "./providers.ts";

export interface EncryptionConfig {
  resources: { resources: string[]; providers: ProviderConfig[] }[];
}

const API_VERSION = "apiserver.config.k8s.io/v1";
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const KEY_BYTES = [16, 24, 32];
// Bounded: a config is a handful of resources and keys.
const MAX_ENTRIES = 64;
const MAX_KEYS = 32;

export class EncryptionConfigError extends Error {}

export function parseEncryptionConfig(text: string, source = "encryption config"): EncryptionConfig {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new EncryptionConfigError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  const bad = (path: string, msg: string) => problems.push(`${path}: ${msg}`);
  const out: EncryptionConfig = { resources: [] };
  if (!isObject(doc)) throw new EncryptionConfigError(`${source}: must be an EncryptionConfiguration object`);
  if (doc.apiVersion !== API_VERSION) bad("apiVersion", `must be ${API_VERSION}, got ${JSON.stringify(doc.apiVersion)}`);
  if (doc.kind !== "EncryptionConfiguration") bad("kind", `must be EncryptionConfiguration, got ${JSON.stringify(doc.kind)}`);
  unknownFields(doc, ["apiVersion", "kind", "resources"], "", bad);
  const entries = doc.resources;
  if (!Array.isArray(entries) || entries.length === 0) bad("resources", "must list at least one entry");
  else if (entries.length > MAX_ENTRIES) bad("resources", `at most ${MAX_ENTRIES} entries`);
  else {
    const seen = new Set<string>();
    entries.forEach((e, i) => {
      const at = `resources[${i}]`;
      if (!isObject(e)) return bad(at, "must be an object with resources and providers");
      unknownFields(e, ["resources", "providers"], at, bad);
      const names = Array.isArray(e.resources) ? e.resources : [];
      if (names.length === 0) bad(`${at}.resources`, "must name at least one resource, e.g. secrets");
      names.forEach((n, j) => {
        if (typeof n !== "string" || n === "") return bad(`${at}.resources[${j}]`, "must be a resource name");
        if (n.includes("*")) return bad(`${at}.resources[${j}]`, `wildcards are not supported: name each resource (e.g. secrets)`);
        if (seen.has(n)) bad(`${at}.resources[${j}]`, `${n} appears in more than one entry`);
        seen.add(n);
      });
      const providers = Array.isArray(e.providers) ? e.providers : [];
      if (providers.length === 0) bad(`${at}.providers`, "must list at least one provider (aesgcm or identity)");
      const parsed = providers.map((p, j) => parseProvider(p, `${at}.providers[${j}]`, bad));
      out.resources.push({ resources: names.filter((n): n is string => typeof n === "string"), providers: parsed.filter((p): p is ProviderConfig => !!p) });
    });
  }
  if (problems.length > 0) throw new EncryptionConfigError(`${source} is invalid: ${problems.join("; ")}`);
  return out;
}

function parseProvider(p: unknown, at: string, bad: (path: string, msg: string) => void): ProviderConfig | undefined {
  if (!isObject(p) || Object.keys(p).length !== 1) return void bad(at, "must have exactly one of aesgcm or identity");
  const [type] = Object.keys(p);
  if (type === "identity") return { identity: {} };
  if (type !== "aesgcm") return void bad(at, `provider ${type} is not supported: use aesgcm or identity`);
  const conf = p.aesgcm;
  const keys = isObject(conf) && Array.isArray(conf.keys) ? conf.keys : [];
  if (isObject(conf)) unknownFields(conf, ["keys"], `${at}.aesgcm`, bad);
  if (keys.length === 0) return void bad(`${at}.aesgcm.keys`, "must list at least one key");
  if (keys.length > MAX_KEYS) return void bad(`${at}.aesgcm.keys`, `at most ${MAX_KEYS} keys`);
  const names = new Set<string>();
  const out: { name: string; secret: Uint8Array }[] = [];
  keys.forEach((k, i) => {
    const kat = `${at}.aesgcm.keys[${i}]`;
    if (!isObject(k)) return bad(kat, "must have name and secret");
    unknownFields(k, ["name", "secret"], kat, bad);
    const name = typeof k.name === "string" ? k.name : "";
    if (!KEY_NAME.test(name)) bad(`${kat}.name`, "must be 1-63 letters, digits, '.', '_' or '-' (no ':')");
    else if (names.has(name)) bad(`${kat}.name`, `${name} is used twice`);
    names.add(name);
    const text = typeof k.secret === "string" ? k.secret.trim() : "";
    const secret = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, "base64") : undefined;
    if (!secret || !KEY_BYTES.includes(secret.length)) {
      return bad(`${kat}.secret`, `must be base64 of 16, 24 or 32 random bytes (32 for AES-256), got ${secret ? `${secret.length} bytes` : "no base64"}`);
    }
    out.push({ name, secret });
  });
  return { aesgcm: { keys: out } };
}

export function readEncryptionConfig(path: string): EncryptionConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new EncryptionConfigError(`cannot read --encryption-provider-config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseEncryptionConfig(text, path);
}

/** A fresh config: Secrets under a new random AES-256 key, with plaintext still readable. */
export function generateEncryptionConfig(): EncryptionConfig {
  return { resources: [{ resources: ["secrets"], providers: [{ aesgcm: { keys: [newKey([])] } }, { identity: {} }] }] };
}

/** Writes a generated config (0600) unless the file exists; true when it did. */
export function ensureEncryptionConfig(path: string): boolean {
  if (existsSync(path)) return false;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeEncryptionConfig(path, generateEncryptionConfig());
  return true;
}

/** Rotation, step 1: every entry gets a new key that writes; the old ones still read. Returns its name. */
export function addWriteKey(cfg: EncryptionConfig): { config: EncryptionConfig; keyName: string } {
  const used = cfg.resources.flatMap((e) => e.providers.flatMap((p) => ("aesgcm" in p ? p.aesgcm.keys.map((k) => k.name) : [])));
  const name = newKey(used).name;
  const resources = cfg.resources.map((e) => {
    const first = e.providers[0];
    const key = { name, secret: new Uint8Array(randomBytes(32)) };
    if (first && "aesgcm" in first) return { ...e, providers: [{ aesgcm: { keys: [key, ...first.aesgcm.keys] } }, ...e.providers.slice(1)] };
    return { ...e, providers: [{ aesgcm: { keys: [key] } }, ...e.providers] };
  });
  return { config: { resources }, keyName: name };
}

/** Rotation, last step: only the write key and identity (for plaintext) remain. */
export function retireOtherKeys(cfg: EncryptionConfig): EncryptionConfig {
  return {
    resources: cfg.resources.map((e) => ({
      ...e,
      providers: e.providers.flatMap((p, i): ProviderConfig[] => {
        if ("identity" in p) return [p];
        return i === 0 ? [{ aesgcm: { keys: p.aesgcm.keys.slice(0, 1) } }] : [];
      }),
    })),
  };
}

export function formatEncryptionConfig(cfg: EncryptionConfig): string {
  return YAML.stringify({
    apiVersion: API_VERSION,
    kind: "EncryptionConfiguration",
    resources: cfg.resources.map((e) => ({
      resources: e.resources,
      providers: e.providers.map((p) =>
        "identity" in p ? { identity: {} } : { aesgcm: { keys: p.aesgcm.keys.map((k) => ({ name: k.name, secret: Buffer.from(k.secret).toString("base64") })) } },
      ),
    })),
  });
}

/** Replaces the file in one step (a reader never sees half of it), readable by its owner only. */
export function writeEncryptionConfig(path: string, cfg: EncryptionConfig): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, formatEncryptionConfig(cfg), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function newKey(used: string[]): { name: string; secret: Uint8Array } {
  // When it was made (for people reading the file), and random: two clusters' keys never share a name.
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "z").toLowerCase();
  let name: string;
  do name = `key-${stamp}-${randomBytes(3).toString("hex")}`;
  while (used.includes(name));
  return { name, secret: new Uint8Array(randomBytes(32)) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function unknownFields(o: Record<string, unknown>, known: string[], at: string, bad: (path: string, msg: string) => void): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) bad(at === "" ? k : `${at}.${k}`, "unknown field");
}
