// Classifying containerd's gRPC errors (ConnectErrors with gRPC codes).

import { Code, ConnectError } from "@connectrpc/connect";

export function codeOf(err: unknown): Code | undefined {
  return err instanceof ConnectError ? err.code : undefined;
}

export const isNotFound = (err: unknown): boolean => codeOf(err) === Code.NotFound;
export const isAlreadyExists = (err: unknown): boolean => codeOf(err) === Code.AlreadyExists;

/** `fn()`, or undefined when containerd answers NOT_FOUND. */
export async function orUndefined<T>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** `fn()`, treating NOT_FOUND as done (idempotent deletes). */
export async function ignoreNotFound(fn: () => Promise<unknown>): Promise<void> {
  await orUndefined(fn);
}

/** The message of an error without connect's "[code] " prefix (e.g. runc's own words). */
export function rawMessage(err: unknown): string {
  if (err instanceof ConnectError) return err.rawMessage;
  return err instanceof Error ? err.message : String(err);
}
