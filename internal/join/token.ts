// Join tokens, like k3s's secure tokens on top of Kubernetes' bootstrap tokens:
//
//   K10<sha256 hex of the CA certificate (DER)>::<id>.<secret>
//
// The hash lets a joining machine check the CA it fetched without trusting it before it sends
// the secret; `<id>.<secret>` is the bearer credential. Each token is a Secret
// `kube-system/bootstrap-token-<id>` of type bootstrap.kubernetes.io/token (data: token-id,
// token-secret, expiration, role, description). Roles: `agent` joins nodes, `server` is for
// servers joining the control plane (its group is distinct, so neither passes for the other).
import { create } from "@bufbuild/protobuf";
import { createHash, randomInt, X509Certificate } from "node:crypto";
import { SecretSchema, type Secret } from "../../gen/skiff/v1alpha1/config_pb.js";

export const TOKEN_NAMESPACE = "kube-system";
export const TOKEN_SECRET_TYPE = "bootstrap.kubernetes.io/token";
export const TOKEN_SECRET_PREFIX = "bootstrap-token-";
export const BOOTSTRAP_USER_PREFIX = "system:bootstrap:";
export const BOOTSTRAPPERS_GROUP = "system:bootstrappers";
export const ROLES = ["agent", "server"] as const;
export type TokenRole = (typeof ROLES)[number];
export const MAX_DESCRIPTION = 256;

/** `system:bootstrappers:agent` or `system:bootstrappers:server`. */
export const roleGroup = (role: TokenRole) => `${BOOTSTRAPPERS_GROUP}:${role}`;

const ID_RE = /^[a-z0-9]{6}$/;
const SECRET_RE = /^[a-z0-9]{16}$/;
const BEARER_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const JOIN_RE = /^K10([0-9a-f]{64})::([a-z0-9]{6})\.([a-z0-9]{16})$/;

export interface JoinToken {
  /** sha256 (hex) of the CA certificate's DER. */
  caHash: string;
  id: string;
  secret: string;
}

/** The bearer part, `<id>.<secret>`. */
export const bearerOf = (t: Pick<JoinToken, "id" | "secret">) => `${t.id}.${t.secret}`;

export function formatJoinToken(t: JoinToken): string {
  return `K10${t.caHash}::${bearerOf(t)}`;
}

/** Parses `K10<hash>::<id>.<secret>`; the error says what the shape must be (never echoing the secret). */
export function parseJoinToken(text: string): JoinToken {
  const m = JOIN_RE.exec(text.trim());
  if (!m) throw new Error("a join token has the form K10<64 hex digits of the CA's sha256>::<6-character id>.<16-character secret> (lowercase letters and digits): get one with `skiff token create` on a server");
  return { caHash: m[1], id: m[2], secret: m[3] };
}

/** `<id>.<secret>` as a bearer token, or undefined when it has another shape. */
export function parseBearer(token: string): { id: string; secret: string } | undefined {
  const m = BEARER_RE.exec(token);
  return m ? { id: m[1], secret: m[2] } : undefined;
}

/** sha256 (hex) of a PEM certificate's DER. */
export function caHashOf(caPem: string): string {
  return createHash("sha256").update(new X509Certificate(caPem).raw).digest("hex");
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
function randomString(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

export function newTokenId(): string {
  return randomString(6);
}

export function newTokenSecret(): string {
  return randomString(16);
}

/** What a token Secret says, checked; undefined when the Secret is not a well-formed token. */
export interface StoredToken {
  id: string;
  secret: string;
  role: TokenRole;
  /** undefined: never expires. */
  expires?: Date;
  description: string;
}

export function tokenSecret(t: StoredToken): Secret {
  const data: Record<string, string> = { "token-id": t.id, "token-secret": t.secret, role: t.role, description: t.description };
  if (t.expires) data.expiration = t.expires.toISOString();
  return create(SecretSchema, {
    metadata: { name: `${TOKEN_SECRET_PREFIX}${t.id}`, namespace: TOKEN_NAMESPACE },
    type: TOKEN_SECRET_TYPE,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, new TextEncoder().encode(v)])),
  });
}

export function readTokenSecret(s: Secret): StoredToken | undefined {
  if (s.type !== TOKEN_SECRET_TYPE || s.metadata?.namespace !== TOKEN_NAMESPACE) return undefined;
  const text = (k: string) => (s.data[k] ? new TextDecoder().decode(s.data[k]) : "");
  const id = text("token-id");
  const secret = text("token-secret");
  const role = text("role");
  if (!ID_RE.test(id) || !SECRET_RE.test(secret) || s.metadata.name !== `${TOKEN_SECRET_PREFIX}${id}`) return undefined;
  if (!(ROLES as readonly string[]).includes(role)) return undefined;
  const exp = text("expiration");
  const expires = exp ? new Date(exp) : undefined;
  // An expiration that does not parse would otherwise mean "never": refuse the token instead.
  if (expires && Number.isNaN(expires.getTime())) return undefined;
  return { id, secret, role: role as TokenRole, expires, description: text("description") };
}

const TOKEN_KEYS = ["token-id", "token-secret", "role", "expiration", "description"];

/**
 * What is wrong with a Secret of the token type (the apiserver's Secret validation): every field
 * is one the authenticator acts on, so anything else is refused rather than stored and ignored.
 */
export function tokenSecretViolations(s: Secret): { field: string; message: string }[] {
  if (s.type !== TOKEN_SECRET_TYPE) return [];
  const out: { field: string; message: string }[] = [];
  const text = (k: string) => (s.data[k] ? new TextDecoder().decode(s.data[k]) : "");
  if (s.metadata?.namespace !== TOKEN_NAMESPACE) out.push({ field: "metadata.namespace", message: `join tokens live in ${TOKEN_NAMESPACE}` });
  if (Object.keys(s.stringData).length > 0) out.push({ field: "stringData", message: `give a join token's fields in data (${TOKEN_KEYS.join(", ")})` });
  for (const k of Object.keys(s.data)) {
    if (!TOKEN_KEYS.includes(k)) out.push({ field: `data[${k}]`, message: `not a join token field: use ${TOKEN_KEYS.join(", ")} (the role names the groups)` });
  }
  const id = text("token-id");
  if (!ID_RE.test(id)) out.push({ field: "data[token-id]", message: "required: 6 characters [a-z0-9]" });
  else if (s.metadata?.name !== `${TOKEN_SECRET_PREFIX}${id}`) out.push({ field: "metadata.name", message: `must be ${TOKEN_SECRET_PREFIX}${id}` });
  if (!SECRET_RE.test(text("token-secret"))) out.push({ field: "data[token-secret]", message: "required: 16 characters [a-z0-9]" });
  if (!(ROLES as readonly string[]).includes(text("role"))) out.push({ field: "data[role]", message: `required: ${ROLES.join(" or ")}` });
  const exp = text("expiration");
  if (exp && Number.isNaN(new Date(exp).getTime())) out.push({ field: "data[expiration]", message: "must be an RFC 3339 time such as 2030-01-02T15:04:05Z" });
  if (text("description").length > MAX_DESCRIPTION) out.push({ field: "data[description]", message: `at most ${MAX_DESCRIPTION} characters` });
  return out;
}

export function isExpired(t: StoredToken, now = Date.now()): boolean {
  return t.expires !== undefined && t.expires.getTime() <= now;
}
