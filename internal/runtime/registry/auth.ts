// Registry authentication: parsing `WWW-Authenticate` challenges and the Bearer token flow of
// the distribution token spec (docs/spec/auth/token.md):
//
//   GET /v2/…                      → 401  WWW-Authenticate: Bearer realm="R",service="S",scope="T"
//   GET R?service=S&scope=T        → 200  {"token": "…"}   (Basic creds sent to R when we have them)
//   GET /v2/… Authorization: Bearer <token>
//
// Basic: `WWW-Authenticate: Basic realm="…"` → resend with `Authorization: Basic base64(user:pass)`.

import type { RegistryAuth } from "../runtime.ts";
import { errorFromResponse, RegistryError } from "./errors.ts";

export interface Challenge {
  /** Lower-cased scheme, e.g. "bearer", "basic". */
  scheme: string;
  /** Parameters with lower-cased names, e.g. { realm, service, scope }. */
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate header value (RFC 7235): one or more challenges, each a scheme and
 * comma-separated `name=value` / `name="quoted value"` parameters.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skip = (chars: string) => {
    while (i < n && chars.includes(header[i])) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !" \t,=\"".includes(header[i])) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skip(" \t,");
    if (i >= n) break;
    const word = token();
    skip(" \t");
    if (header[i] === "=" && current && word) {
      // name=value inside the current challenge
      i++;
      skip(" \t");
      let value: string;
      if (header[i] === '"') {
        i++;
        value = "";
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++; // closing quote
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else if (word) {
      current = { scheme: word.toLowerCase(), params: {} };
      challenges.push(current);
    } else {
      i++; // stray character: move on
    }
  }
  return challenges;
}

export function basicAuthorization(auth: RegistryAuth): string {
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")}`;
}

export interface TokenRequest {
  realm: string;
  service?: string;
  scopes: string[];
  auth?: RegistryAuth;
  signal?: AbortSignal;
  /** Prefix of error messages, e.g. "pull busybox". */
  errorPrefix: string;
}

/** Fetches a Bearer token from the challenge's realm; returns the Authorization header value. */
export async function fetchBearerToken(req: TokenRequest): Promise<string> {
  let url: URL;
  try {
    url = new URL(req.realm);
  } catch {
    throw new RegistryError("Unauthorized", `${req.errorPrefix}: bad token realm "${req.realm}" in the registry's challenge`);
  }
  if (req.service) url.searchParams.set("service", req.service);
  for (const scope of req.scopes) url.searchParams.append("scope", scope);
  const headers: Record<string, string> = { accept: "application/json" };
  if (req.auth) headers.authorization = basicAuthorization(req.auth);
  const what = `${req.errorPrefix}: token from ${url.origin}${url.pathname}`;

  let res: Response;
  try {
    res = await fetch(url, { headers, signal: req.signal, redirect: "follow" });
  } catch (err) {
    if (req.signal?.aborted) throw req.signal.reason;
    throw unreachable(what, err);
  }
  if (!res.ok) {
    const err = await errorFromResponse(res, what);
    // A token server answers bad credentials with 401 (some with 403 or 400).
    if (res.status === 400) throw new RegistryError("Unauthorized", err.message, { status: res.status, errors: err.errors });
    throw err;
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new RegistryError("Unauthorized", `${what}: answer is not JSON`);
  }
  const obj = (body ?? {}) as { token?: unknown; access_token?: unknown };
  const token = typeof obj.token === "string" && obj.token ? obj.token : obj.access_token;
  if (typeof token !== "string" || !token) throw new RegistryError("Unauthorized", `${what}: answer has no token`);
  return `Bearer ${token}`;
}

/** A network-level failure (refused, DNS, TLS, reset) as an Unreachable RegistryError. */
export function unreachable(what: string, err: unknown): RegistryError {
  let cause = (err as { cause?: unknown })?.cause ?? err;
  // Connecting to every address of a name fails as an AggregateError: its first error says why.
  const inner = (cause as { errors?: unknown })?.errors;
  if (Array.isArray(inner) && inner.length > 0 && !(cause as Error).message) cause = inner[0];
  const code = (cause as { code?: unknown })?.code;
  const message = (cause as { message?: unknown })?.message;
  const text = typeof message === "string" && message ? message : String(cause);
  const detail = typeof code === "string" && !text.includes(code) ? `${code}: ${text}` : text;
  return new RegistryError("Unreachable", `${what}: ${detail}`, { cause: err });
}
