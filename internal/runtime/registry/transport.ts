// The HTTP side of one pull: GETs against one repository of one registry, with
//   - the scheme chosen once (HTTPS; plain HTTP for loopback hosts and insecure registries),
//   - authentication on demand: a 401 is answered by its challenge (Bearer token or Basic),
//     the result is kept for the following requests of this pull, and the request is sent again,
//   - redirects followed by hand (blobs often live on a CDN or object store), dropping the
//     Authorization header once the redirect leaves the registry's origin,
//   - every failure turned into a RegistryError with the registry's own message.

import type { RegistryAuth } from "../runtime.ts";
import { basicAuthorization, fetchBearerToken, parseChallenges, unreachable } from "./auth.ts";
import { errorFromResponse, RegistryError } from "./errors.ts";
import { apiHost } from "./reference.ts";

export interface TransportOptions {
  /** Registry host as in the reference, e.g. "docker.io", "localhost:5000". */
  domain: string;
  /** Repository path, e.g. "library/busybox": the token scope asks for pull on it. */
  repository: string;
  auth?: RegistryAuth;
  /** host:port (or host, for any port) reached over plain HTTP besides loopback hosts. */
  insecureRegistries?: string[];
  signal?: AbortSignal;
  /** Prefix of every error message, e.g. "pull busybox". */
  errorPrefix: string;
}

export interface Transport {
  /** e.g. "https://registry-1.docker.io" or "http://127.0.0.1:5000" */
  baseUrl: string;
  /**
   * GETs baseUrl + path and returns the successful (2xx) response, body unread.
   * `what` prefixes error messages after errorPrefix (e.g. "blob sha256:…"); "" for none.
   */
  get(path: string, headers: Record<string, string>, what: string): Promise<Response>;
}

const MAX_REDIRECTS = 10;
const USER_AGENT = "skiff/0.1 (+registry client)";

/** Hostname of a "host[:port]" domain, brackets kept for IPv6 ("[::1]"). */
function hostname(domain: string): string {
  if (domain.startsWith("[")) return domain.slice(0, domain.indexOf("]") + 1);
  const colon = domain.indexOf(":");
  return colon === -1 ? domain : domain.slice(0, colon);
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Plain HTTP for loopback hosts and listed insecure registries; HTTPS for everything else. */
export function schemeFor(domain: string, insecureRegistries: string[] = []): "http" | "https" {
  if (isLoopback(hostname(domain))) return "http";
  for (const raw of insecureRegistries) {
    const entry = raw.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
    if (entry === domain || entry === hostname(domain)) return "http";
  }
  return "https";
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // already closed
  }
}

export function createTransport(opts: TransportOptions): Transport {
  const host = apiHost(opts.domain);
  const baseUrl = `${schemeFor(opts.domain, opts.insecureRegistries)}://${host}`;
  const origin = new URL(baseUrl).origin;
  const pullScope = `repository:${opts.repository}:pull`;
  /** The Authorization header value that worked (or was last obtained) in this pull. */
  let authorization: string | undefined;

  function prefix(what: string): string {
    return what ? `${opts.errorPrefix}: ${what}` : opts.errorPrefix;
  }

  async function send(url: URL, headers: Record<string, string>, what: string): Promise<Response> {
    let current = url;
    for (let hops = 0; ; hops++) {
      const h: Record<string, string> = { "user-agent": USER_AGENT, ...headers };
      if (authorization && current.origin === origin) h.authorization = authorization;
      let res: Response;
      try {
        res = await fetch(current, { headers: h, redirect: "manual", signal: opts.signal });
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const where = current.origin === origin ? baseUrl : current.origin;
        throw unreachable(`${prefix(what)}: cannot reach ${where}`, err);
      }
      if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
      const location = res.headers.get("location");
      await discard(res);
      if (!location) throw new RegistryError("Unexpected", `${prefix(what)}: redirect (${res.status}) without a Location`, { status: res.status });
      if (hops >= MAX_REDIRECTS) throw new RegistryError("Unexpected", `${prefix(what)}: more than ${MAX_REDIRECTS} redirects`, { status: res.status });
      current = new URL(location, current);
    }
  }

  /** Answers a 401's challenge; returns whether a new Authorization is worth a retry. */
  async function authenticate(res: Response): Promise<boolean> {
    const challenges = parseChallenges(res.headers.get("www-authenticate") ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    let next: string | undefined;
    if (bearer) {
      const scopes = [bearer.params.scope, pullScope].filter((s): s is string => !!s);
      next = await fetchBearerToken({
        realm: bearer.params.realm,
        service: bearer.params.service,
        scopes: [...new Set(scopes.flatMap((s) => s.split(" ")))],
        auth: opts.auth,
        signal: opts.signal,
        errorPrefix: opts.errorPrefix,
      });
    } else if (challenges.some((c) => c.scheme === "basic") && opts.auth) {
      next = basicAuthorization(opts.auth);
    }
    if (next === undefined || next === authorization) return false;
    authorization = next;
    return true;
  }

  return {
    baseUrl,
    async get(path, headers, what) {
      const url = new URL(path, baseUrl);
      let res = await send(url, headers, what);
      if (res.status === 401 && new URL(res.url || url).origin === origin) {
        // Keep the 401 until we know whether a retry is possible: its body is the error to show.
        const first = res;
        let retry: boolean;
        try {
          retry = await authenticate(first);
        } catch (err) {
          await discard(first);
          throw err;
        }
        if (retry) {
          await discard(first);
          res = await send(url, headers, what);
        }
      }
      if (!res.ok) throw await errorFromResponse(res, prefix(what));
      return res;
    },
  };
}
