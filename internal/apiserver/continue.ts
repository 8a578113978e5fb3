// The continue token of a paged List: where the next page starts and the revision every page of
// the list is read at. Opaque to clients (base64url of a small JSON document, like Kubernetes'),
// and checked strictly when it comes back: a token that was changed is INVALID_ARGUMENT, never a
// read somewhere unexpected.
import { Code, ConnectError } from "@connectrpc/connect";

export interface ContinuePosition {
  /** The storage revision of the list's first page. */
  revision: number;
  /** The first key of the next page, relative to the list's key prefix. */
  start: string;
}

const VERSION = 1;
/** A token carries one storage key; keys are short (names are at most 253 characters). */
const MAX_TOKEN_LENGTH = 4096;

export function encodeContinue(pos: ContinuePosition): string {
  return Buffer.from(JSON.stringify({ v: VERSION, rv: pos.revision, start: pos.start }), "utf8").toString("base64url");
}

function invalidToken(why: string): ConnectError {
  return new ConnectError(
    `continue: ${why}; pass the continue value of the previous page unchanged, or list again without continue`,
    Code.InvalidArgument,
  );
}

export function decodeContinue(token: string): ContinuePosition {
  if (token.length > MAX_TOKEN_LENGTH) throw invalidToken(`longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw invalidToken("not a continue token (not base64url)");
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalidToken("not a continue token (undecodable)");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw invalidToken("not a continue token");
  const { v, rv, start, ...extra } = doc as Record<string, unknown>;
  if (v !== VERSION) throw invalidToken(`unknown token version ${JSON.stringify(v)}`);
  if (Object.keys(extra).length > 0) throw invalidToken("unexpected fields");
  if (typeof rv !== "number" || !Number.isSafeInteger(rv) || rv < 1) throw invalidToken("bad resource version");
  if (typeof start !== "string" || start === "") throw invalidToken("bad start key");
  return { revision: rv, start };
}
