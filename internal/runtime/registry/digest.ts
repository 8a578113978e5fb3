// Content digests ("sha256:<hex>", "sha512:<hex>") of exact bytes, and a stream wrapper that
// verifies a blob while it flows into the sink: it counts and hashes every chunk, stops as soon
// as the body is longer than the descriptor says, and fails at the end on a short body or a
// different digest, so that the sink never sees a successful end of a wrong blob.

import { createHash, type Hash } from "node:crypto";
import { RegistryError } from "./errors.ts";

function hashFor(digest: string): Hash {
  const algo = digest.slice(0, digest.indexOf(":"));
  if (algo !== "sha256" && algo !== "sha512") {
    throw new RegistryError("BadManifest", `unsupported digest algorithm in "${digest}"`);
  }
  return createHash(algo);
}

/** The digest of `bytes`, with the algorithm of `like` (default sha256). */
export function digestOf(bytes: Uint8Array, like = "sha256:"): string {
  const algo = like.slice(0, like.indexOf(":"));
  return `${algo}:${hashFor(like).update(bytes).digest("hex")}`;
}

export interface VerifiedStream {
  body: AsyncIterable<Uint8Array>;
  /** Set once the body ended (or broke off) with wrong bytes. */
  failure(): RegistryError | undefined;
  /** True once the whole body was read and matched. */
  verified(): boolean;
}

/**
 * Wraps `source` so that it yields the same chunks and then checks size and digest.
 * `what` names the blob in error messages (e.g. "pull busybox: blob sha256:…").
 */
export function verifyStream(
  source: AsyncIterable<Uint8Array>,
  expected: { digest: string; size: number },
  what: string,
): VerifiedStream {
  let failure: RegistryError | undefined;
  let ok = false;
  const fail = (message: string) => (failure = new RegistryError("DigestMismatch", `${what}: ${message}`));

  async function* run(): AsyncGenerator<Uint8Array> {
    const hash = hashFor(expected.digest);
    let size = 0;
    for await (const chunk of source) {
      size += chunk.byteLength;
      if (size > expected.size) throw fail(`body longer than the ${expected.size} bytes its descriptor says`);
      hash.update(chunk);
      yield chunk;
    }
    if (size !== expected.size) throw fail(`got ${size} bytes, descriptor says ${expected.size}`);
    const algo = expected.digest.slice(0, expected.digest.indexOf(":"));
    const got = `${algo}:${hash.digest("hex")}`;
    if (got !== expected.digest) throw fail(`digest mismatch: got ${got}, want ${expected.digest}`);
    ok = true;
  }

  return { body: run(), failure: () => failure, verified: () => ok };
}
