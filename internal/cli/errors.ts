// Errors as a user should read them: one line each, no stack, naming what to fix.
import { Code, ConnectError } from "@connectrpc/connect";

/** A mistake the user can fix; its message is printed as is. */
export class CliError extends Error {
  override name = "CliError";
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EPIPE"]);

function causeCode(err: ConnectError): string | undefined {
  const c = err.cause as { code?: unknown } | undefined;
  return typeof c?.code === "string" ? c.code : undefined;
}

/** The connection to the apiserver failed (as opposed to the apiserver answering with an error). */
export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof ConnectError)) return false;
  if (err.code === Code.DeadlineExceeded) return true;
  if (err.code !== Code.Unavailable && err.code !== Code.Internal && err.code !== Code.Unknown) return false;
  const code = causeCode(err);
  return (code !== undefined && NETWORK_CODES.has(code)) || /ECONN|ENOTFOUND|EAI_AGAIN|socket hang up|session|protocol error/i.test(err.rawMessage);
}

const UNTRUSTED_CERT_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_SIGNATURE_FAILURE",
]);

/**
 * One line (or a few, one per problem) describing err, without the "Error: " prefix. `servers`:
 * the one it talked to, or every one it could move to (the first is the one it talked to first).
 */
export function describeError(err: unknown, servers: string | string[], caFile?: string): string {
  const all = typeof servers === "string" ? [servers] : servers;
  const server = all[0] ?? "the configured server";
  if (err instanceof ConnectError) {
    const code = causeCode(err);
    if (code && UNTRUSTED_CERT_CODES.has(code)) {
      return `the server's certificate is not signed by the CA in ${caFile ?? "the configured CA file"} (${server}): use the cluster's ca.crt (--certificate-authority)`;
    }
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `the server's certificate is not valid for ${server}: connect by a name or address it was issued for (skiff apiserver --tls-san)`;
    if (code === "CERT_HAS_EXPIRED") return `the server's certificate at ${server} has expired`;
    if (err.code === Code.Unauthenticated) return `not authenticated by ${server}: ${err.rawMessage}`;
    // RBAC's refusals already say "… is forbidden: User …" (Kubernetes' words).
    if (err.code === Code.PermissionDenied) return /(^|\s)forbidden: /.test(err.rawMessage) ? err.rawMessage : `forbidden: ${err.rawMessage}`;
    if (isUnreachable(err)) {
      const why = err.code === Code.DeadlineExceeded ? "no answer in time" : err.rawMessage;
      // Calls move on to the next server while one cannot be reached: none answered.
      if (all.length > 1) return `cannot reach any apiserver (${all.join(", ")}): ${why}`;
      return `cannot reach the apiserver at ${server}: ${why}`;
    }
    return err.rawMessage;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The text to print on stderr for err: every line starts with "Error: ". */
export function formatError(err: unknown, servers: string | string[], caFile?: string): string {
  return describeError(err, servers, caFile)
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => `Error: ${l}`)
    .join("\n");
}

/** Ends the command with exit code 1 after its errors were already printed. */
export class AlreadyReported extends Error {
  override name = "AlreadyReported";
  constructor() {
    super("errors were reported");
  }
}
