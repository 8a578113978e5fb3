// RegistryError: every failure of a pull, with a machine-readable `reason` and a message that
// carries the registry's own words. Registries answer errors as JSON
// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":…}]}`; we print
// each as Docker does (`<code in lower case>: <message>`), then the HTTP status:
//
//   pull skiff.local:5000/nope:v1: manifest unknown: manifest unknown (404)

export type RegistryErrorReason =
  /** The reference does not parse. */
  | "InvalidReference"
  /** Repository, tag, manifest, blob or platform does not exist (404, or no manifest for the platform). */
  | "NotFound"
  /** Missing or wrong credentials (401, also from the token endpoint). */
  | "Unauthorized"
  /** Authenticated but not allowed (403). */
  | "Denied"
  /** No connection (refused, DNS, TLS, reset), or a gateway that cannot reach the registry (502/503/504). */
  | "Unreachable"
  /** Bytes whose digest or size differ from what was asked for. */
  | "DigestMismatch"
  /** A manifest or index that is not valid JSON, has an unsupported media type, or is too big. */
  | "BadManifest"
  /** Any other HTTP status (400, 405, 429, 500, …). */
  | "Unexpected";

/** One entry of a registry's v2 JSON error body. */
export interface RegistryErrorDetail {
  code: string;
  message: string;
  detail?: unknown;
}

export class RegistryError extends Error {
  readonly reason: RegistryErrorReason;
  /** The HTTP status that caused it, when there was one. */
  readonly status: number | undefined;
  /** The registry's `errors[]`, when its body had them. */
  readonly errors: RegistryErrorDetail[];

  constructor(
    reason: RegistryErrorReason,
    message: string,
    extra: { status?: number; errors?: RegistryErrorDetail[]; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "RegistryError";
    this.reason = reason;
    this.status = extra.status;
    this.errors = extra.errors ?? [];
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

export function reasonForStatus(status: number): RegistryErrorReason {
  if (status === 404) return "NotFound";
  if (status === 401) return "Unauthorized";
  if (status === 403) return "Denied";
  if (status === 502 || status === 503 || status === 504) return "Unreachable";
  return "Unexpected";
}

/** Parses a v2 error body; also accepts `{"details": "…"}` / `{"error": "…"}` from token servers. */
export function parseErrorBody(text: string): RegistryErrorDetail[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [];
  }
  if (!body || typeof body !== "object") return [];
  const obj = body as Record<string, unknown>;
  if (Array.isArray(obj.errors)) {
    return obj.errors
      .filter((e): e is Record<string, unknown> => !!e && typeof e === "object")
      .map((e) => ({
        code: typeof e.code === "string" ? e.code : "",
        message: typeof e.message === "string" ? e.message : "",
        detail: e.detail,
      }))
      .filter((e) => e.code !== "" || e.message !== "");
  }
  for (const key of ["details", "error_description", "error", "message"]) {
    if (typeof obj[key] === "string" && obj[key]) return [{ code: "", message: obj[key] as string }];
  }
  return [];
}

/** `MANIFEST_UNKNOWN` + `manifest unknown` → `manifest unknown: manifest unknown` (Docker's format). */
export function formatErrorDetails(errors: RegistryErrorDetail[]): string {
  return errors
    .map((e) => {
      const code = e.code.toLowerCase().replaceAll("_", " ");
      if (!code) return e.message;
      if (!e.message) return code;
      return `${code}: ${e.message}`;
    })
    .join("; ");
}

const MAX_ERROR_BODY = 64 * 1024;

/** Reads (a bounded prefix of) an error response and turns it into a RegistryError. */
export async function errorFromResponse(res: Response, prefix: string): Promise<RegistryError> {
  let text = "";
  try {
    text = await readTextPrefix(res, MAX_ERROR_BODY);
  } catch {
    // the body broke off: the status alone must do
  }
  const errors = parseErrorBody(text);
  let what = formatErrorDetails(errors);
  if (!what) {
    const plain = text.trim().replace(/\s+/g, " ").slice(0, 200);
    const isHtml = /^<(!doctype|html)/i.test(plain);
    what = plain && !isHtml ? plain : res.statusText || "unexpected status";
  }
  return new RegistryError(reasonForStatus(res.status), `${prefix}: ${what} (${res.status})`, {
    status: res.status,
    errors,
  });
}

async function readTextPrefix(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size >= max) break; // leaving the loop cancels the rest of the body
  }
  return Buffer.concat(chunks).subarray(0, max).toString("utf8");
}
