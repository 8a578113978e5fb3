// Read-modify-write for the commands that change one field of an object (scale, set image,
// rollout pause/resume/undo, cordon): read the object, change it, update it with the resource
// version just read, and start over when someone else wrote in between (ABORTED).
import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiObject } from "../api/registry.ts";
import type { ResourceClient } from "../client/resource-client.ts";
import { CliError } from "./errors.ts";

/** Rounds of read-modify-write before giving up on a busy object. */
const ATTEMPTS = 10;

export interface Mutated<T> {
  obj: T;
  /** false when `change` said there was nothing to do (and nothing was written). */
  changed: boolean;
}

/**
 * Applies `change` to the current object and writes it back. `change` edits the object in place
 * and returns false when there is nothing to change; it may throw (a failed precondition) and is
 * called again, on a fresh copy, after each conflict.
 */
export async function updateWithRetry<T extends ApiObject>(
  client: ResourceClient<T>,
  namespace: string,
  name: string,
  change: (obj: T) => boolean,
): Promise<Mutated<T>> {
  for (let attempt = 1; ; attempt++) {
    const obj = await client.get(namespace, name);
    if (!change(obj)) return { obj, changed: false };
    try {
      // The resource version read above makes the write conditional.
      return { obj: await client.update(obj), changed: true };
    } catch (err) {
      if (!(err instanceof ConnectError && err.code === Code.Aborted)) throw err;
      if (attempt >= ATTEMPTS) {
        throw new CliError(`${client.kind.singular} "${name}" kept changing while it was being updated (${ATTEMPTS} attempts); try again`);
      }
    }
  }
}

/** A NotFound answer (for commands that word their own "not found"). */
export function isNotFound(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.NotFound;
}
